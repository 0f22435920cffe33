"""Translation between client dialects and the router's internal chat form (an OpenAI chat completions body).

Pure functions and small stateful stream translators; no I/O. One module per dialect:

- `anthropic_in`: the Anthropic Messages API in front of every backend (request -> chat body, completion ->
  message, chunk stream -> Anthropic SSE events).
- `responses`: the OpenAI Responses API in front of every backend.
- `anthropic_out`: the reverse direction, for Anthropic as an upstream (chat body -> Messages request,
  Messages response/events -> completion/chunks).
"""
