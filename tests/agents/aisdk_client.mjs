// A Vercel AI SDK program (ai v5 or v7, with the providers made for it) against agentgate: a tool loop with one
// tool, add({a: int, b: int}).
// Usage: node aisdk_client.mjs NODE_MODULES PROVIDER MODE [OPTIONS_JSON]
// PROVIDER: compat (@ai-sdk/openai-compatible: chat), responses (@ai-sdk/openai `.responses()`), anthropic
// (@ai-sdk/anthropic: Messages). MODE: generate (generateText) | stream (streamText). OPTIONS_JSON: steps (the most
// steps, 4), maxOutputTokens, providerOptions. Prints one JSON line: what the SDK saw (steps, finish reasons, tool
// calls, usage), the errors it raised, the tool calls it ran, and what it sent (each request's input item types,
// for the Responses model).
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [nodeModules, provider, mode, optsJson] = process.argv.slice(2);
// v7's packages are ES modules only (no `require` export): each is imported from the file NODE_MODULES resolves
const resolve = createRequire(path.join(nodeModules, 'x.js')).resolve;
const load = (name) => import(pathToFileURL(resolve(name)).href);
const ai = await load('ai');
const { z } = await load('zod');
const stepCount = ai.isStepCount ?? ai.stepCountIs;  // v7's name; v5 has only `stepCountIs` (v7 keeps it as an alias)
const opts = JSON.parse(optsJson || '{}');
const base = 'http://127.0.0.1:8080/v1';
const sent = [];
const recording = async (url, init) => {  // the providers' requests, passed on unchanged
  const body = typeof init?.body === 'string' ? JSON.parse(init.body) : {};
  if (Array.isArray(body.input)) sent.push(body.input.map((item) => item.type ?? `message:${item.role}`));
  return fetch(url, init);
};

let model;
if (provider === 'compat') {
  const { createOpenAICompatible } = await load('@ai-sdk/openai-compatible');
  model = createOpenAICompatible({ name: 'agentgate', baseURL: base, apiKey: 'unused', includeUsage: true,
                                   fetch: recording })('coder');
} else if (provider === 'responses') {
  const { createOpenAI } = await load('@ai-sdk/openai');
  model = createOpenAI({ baseURL: base, apiKey: 'unused', fetch: recording }).responses('coder');
} else {
  const { createAnthropic } = await load('@ai-sdk/anthropic');
  model = createAnthropic({ baseURL: base, apiKey: 'unused', fetch: recording })('coder');
}

const executed = [];
const tools = {
  add: ai.tool({
    description: 'Add two integers',
    inputSchema: z.object({ a: z.number().int(), b: z.number().int() }),
    execute: async ({ a, b }) => { executed.push({ a, b }); return String(a + b); },
  }),
};

const errors = [];
const args = {
  model, tools, prompt: 'Add 2 and 3, then 4 and 5.', stopWhen: stepCount(opts.steps || 4), maxRetries: 0,
  ...(opts.maxOutputTokens ? { maxOutputTokens: opts.maxOutputTokens } : {}),
  ...(opts.providerOptions ? { providerOptions: opts.providerOptions } : {}),
};

function describeStep(s) {
  return {
    finishReason: s.finishReason, text: s.text, reasoningText: s.reasoningText,
    toolCalls: s.toolCalls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input, invalid: c.invalid })),
    usage: s.usage,
  };
}

function errInfo(e) {
  return { name: e?.name, message: String(e?.message ?? e).slice(0, 1500),
           cause: e?.cause ? String(e.cause?.message ?? e.cause).slice(0, 1500) : undefined,
           statusCode: e?.statusCode, responseBody: e?.responseBody ? String(e.responseBody).slice(0, 1500) : undefined };
}

let out = {};
try {
  if (mode === 'generate') {
    const r = await ai.generateText(args);
    out = { finishReason: r.finishReason, text: r.text, usage: r.usage, steps: r.steps.map(describeStep) };
  } else {
    const r = ai.streamText({ ...args, onError: ({ error }) => errors.push(errInfo(error)) });
    for await (const p of r.fullStream) {
      if (p.type === 'error') errors.push(errInfo(p.error));
    }
    out = { finishReason: await r.finishReason, text: await r.text, usage: await r.usage,
            steps: (await r.steps).map(describeStep) };
  }
} catch (e) {
  errors.push(errInfo(e));
}
out.errors = errors;
out.executed = executed;
out.sent = sent;
console.log(JSON.stringify(out));
