"""An openai-agents program for the cut-call check: one streamed run (Responses or chat model) with a write_file
tool, whose model's call is cut by the token limit. Prints what the run ended with (its answer, or the error the
SDK raised); the test looks at whether the tool ran.

Usage: python oa_cut_client.py responses|chat WORKDIR BASE_URL
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI


async def main(mode: str, work: Path, base_url: str) -> None:
    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)

    @function_tool
    def write_file(name: str, text: str) -> str:
        """Write `text` to the file `name` in the work folder."""
        (work / name).write_text(text)
        return f"wrote {name}"

    model = OpenAIResponsesModel("coder", client) if mode == "responses" else \
        OpenAIChatCompletionsModel("coder", client)
    agent = Agent(name="writer", instructions="Use the tools.", model=model, tools=[write_file])
    try:
        run = Runner.run_streamed(agent, "Write the file.", max_turns=4)
        async for _ in run.stream_events():
            pass
        print("ANSWER:", run.final_output)
    except Exception as exc:  # the SDK refusing the cut call is one acceptable end
        print("RAISED:", type(exc).__name__, str(exc)[:300])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
