// openai-node against the gateway: raw calls, raw streams and the stream helpers, both request forms,
// both answer styles; images.generate and images.edit.
//
// Run by tests/clients/test_openai_node.py as `node openai_node.mjs BASE_URL KEY` with the pinned
// package (package-lock.json); prints one JSON object: per case, the pictures the client handed back
// (choice index and data URL), or the error it threw. The parts between `README:` and `END README`
// are the README's snippets, word for word.
import { File } from "node:buffer";
import OpenAI, { toFile } from "openai";

import { Report } from "./case_report.mjs";

// Node 18 (Debian 12's nodejs) has no global File, which openai-node's uploads need; its own error
// message names this fix. Node 20 and newer have it.
globalThis.File ??= File;

const [BASE_URL, KEY] = process.argv.slice(2);
const PROMPT = [{ role: "user", content: "a lighthouse at dusk" }];
const FORMS = {
  modalities: { modalities: ["image", "text"] },
  tool: { tools: [{ type: "image_generation", image_generation: { size: "64x64" } }] },
};

async function readmeStreamHelper(report) {
  // README: openai-node
  const client = new OpenAI({
    baseURL: BASE_URL, apiKey: KEY, defaultHeaders: { "X-Gateway-Answer-Style": "openrouter" },
  });
  const stream = client.chat.completions.stream({
    model: "local-image", messages: [{ role: "user", content: "a lighthouse at dusk" }],
    modalities: ["image", "text"], n: 2,
  });
  const completion = await stream.finalChatCompletion();
  const dataUrls = completion.choices.map((choice) => choice.message.images[0].image_url.url);
  // END README
  dataUrls.forEach((dataUrl, index) => report.picture(index, dataUrl));
}

function client(style) {
  return new OpenAI({ baseURL: BASE_URL, apiKey: KEY, defaultHeaders: { "X-Gateway-Answer-Style": style } });
}

// Pictures of a message or a delta, wherever the style puts them: `images`, else image_generation tool calls.
function picturesOf(report, index, message) {
  for (const image of message.images ?? []) report.picture(index, image.image_url.url);
  for (const call of message.tool_calls ?? []) {
    if (call.type === "image_generation") {
      report.picture(index, "data:image/png;base64," + call.image_generation.result);
    }
  }
}

async function raw(report, style, form) {
  const completion = await client(style).chat.completions.create({ model: "local-image", messages: PROMPT, n: 2, ...FORMS[form] });
  for (const choice of completion.choices) picturesOf(report, choice.index, choice.message);
  report.textOf(completion.choices.map((choice) => choice.message.content));
}

async function rawStream(report, style, form) {
  const stream = await client(style).chat.completions.create({
    model: "local-image", messages: PROMPT, n: 2, stream: true, ...FORMS[form],
  });
  for await (const chunk of stream) {
    for (const choice of chunk.choices) picturesOf(report, choice.index, choice.delta);
  }
}

async function streamHelper(report, style, form) {
  const stream = client(style).chat.completions.stream({ model: "local-image", messages: PROMPT, n: 2, ...FORMS[form] });
  const completion = await stream.finalChatCompletion();
  for (const choice of completion.choices) picturesOf(report, choice.index, choice.message);
  report.textOf(completion.choices.map((choice) => choice.message.content));
}

async function imagesGenerate(report) {
  const result = await client("parts").images.generate({ model: "local-image", prompt: "a lighthouse", size: "64x64", n: 2 });
  result.data.forEach((item, index) => report.picture(index, "data:image/png;base64," + item.b64_json));
  report.usage(result.usage);
}

async function imagesEdit(report) {
  const openai = client("parts");
  const source = (await openai.images.generate({ model: "local-image", prompt: "a lighthouse", size: "64x64" })).data[0];
  const result = await openai.images.edit({
    model: "local-image", prompt: "make it night", size: "64x64",
    image: await toFile(Buffer.from(source.b64_json, "base64"), "in.png", { type: "image/png" }),
  });
  report.picture(0, "data:image/png;base64," + result.data[0].b64_json);
  report.usage(result.usage);
}

class ChatReport extends Report {
  // what each choice's `content` holds: a string, null, or "<list>" for content parts
  textOf(contents) { this.current.contents = contents.map((c) => (Array.isArray(c) ? "<list>" : c ?? null)); }

  usage(usage) { this.current.input_tokens_details = usage?.input_tokens_details ?? null; }
}

const report = new ChatReport();
await report.run("readme-stream-helper", readmeStreamHelper);
for (const style of ["parts", "openrouter"]) {
  for (const form of Object.keys(FORMS)) {
    await report.run(`chat-${form}-${style}-json`, raw, style, form);
    await report.run(`chat-${form}-${style}-stream`, rawStream, style, form);
    await report.run(`chat-${form}-${style}-stream-helper`, streamHelper, style, form);
  }
}
await report.run("images-generate", imagesGenerate);
await report.run("images-edit", imagesEdit);
report.print();
