"""An openai-agents program (the client under test): one agent with two function tools (one returns an image) and,
on the Responses model, a hosted tool (WebSearchTool) that agentgate must drop; a run, then a resumed run.

Usage: python oa_client.py responses|chat WORKDIR BASE_URL
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    ToolOutputImage,
    WebSearchTool,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from tests.agents.models import RESUME_MARK


async def main(mode: str, work: Path, base_url: str) -> None:
    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)

    @function_tool
    def write_file(name: str, text: str) -> str:
        """Write `text` to the file `name` in the work folder."""
        (work / name).write_text(text)
        return f"wrote {name}"

    @function_tool
    def screenshot() -> ToolOutputImage:
        """A screenshot of the screen."""
        data = base64.b64encode((work / "pixel.png").read_bytes()).decode()
        return ToolOutputImage(image_url=f"data:image/png;base64,{data}")

    if mode == "responses":
        model: OpenAIResponsesModel | OpenAIChatCompletionsModel = OpenAIResponsesModel("coder", client)
        tools = [write_file, screenshot, WebSearchTool()]
    else:
        model = OpenAIChatCompletionsModel("coder", client)
        tools = [write_file, screenshot]
    agent = Agent(name="writer", instructions="Use the tools.", model=model, tools=tools)
    first = await Runner.run(agent, "Write the files, then take a screenshot.", max_turns=10)
    print(first.final_output)
    if mode == "responses":
        again = await Runner.run(agent, f"{RESUME_MARK}: is the session intact?",
                                 previous_response_id=first.last_response_id)
    else:
        history = [*first.to_input_list(), {"role": "user", "content": f"{RESUME_MARK}: is the session intact?"}]
        again = await Runner.run(agent, history)  # type: ignore[arg-type]
    print(again.final_output)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
