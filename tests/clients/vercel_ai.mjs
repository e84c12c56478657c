// The Vercel AI SDK against the gateway: generateImage (and edits) through the OpenAI provider's image
// model, generateText / streamText reading files through the OpenRouter provider, in both answer styles.
//
// Run by tests/clients/test_vercel_ai.py as `node vercel_ai.mjs BASE_URL KEY` with the pinned packages
// (package-lock.json); prints one JSON object: per case, the pictures the SDK handed back, or the
// error it threw. The parts between `README:` and `END README` are the README's snippets, word for word.
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { createOpenRouter } from "@openrouter/ai-sdk-provider";
import { generateImage, generateText, streamText } from "ai";

import { Report } from "./case_report.mjs";

const [BASE_URL, KEY] = process.argv.slice(2);

async function readmeGenerateImage(report) {
  // README: vercel-ai-images
  const gateway = createOpenAI({ baseURL: BASE_URL, apiKey: KEY });
  const { images } = await generateImage({ model: gateway.image("local-image"), prompt: "a lighthouse at dusk",
                                           size: "64x64", n: 2 });
  const edited = await generateImage({ model: gateway.image("local-image"), size: "64x64",
                                       prompt: { text: "make it night", images: [images[0].uint8Array] } });
  // images[i].base64, images[i].uint8Array, images[i].mediaType
  // END README
  images.forEach((image, index) => report.file(index, image));
  report.file(2, edited.image);
}

async function readmeGenerateText(report) {
  // README: vercel-ai-text
  const gateway = createOpenRouter({
    baseURL: BASE_URL, apiKey: KEY, headers: { "X-Gateway-Answer-Style": "openrouter" },
    extraBody: { modalities: ["image", "text"] },
  });
  const result = await generateText({ model: gateway.chat("local-image"), prompt: "a lighthouse at dusk" });
  const pictures = result.files.filter((file) => file.mediaType.startsWith("image/"));
  // pictures[i].base64, pictures[i].uint8Array, pictures[i].mediaType; result.text: the provider's words
  // END README
  pictures.forEach((file) => report.file(0, file));
  report.current.text = result.text;
}

function openrouterProvider(style) {
  return createOpenRouter({
    baseURL: BASE_URL, apiKey: KEY, headers: { "X-Gateway-Answer-Style": style },
    extraBody: { modalities: ["image", "text"] },
  });
}

async function text(report, style, model) {
  const result = await generateText({ model: openrouterProvider(style).chat(model), prompt: "a lighthouse" });
  result.files.forEach((file) => report.file(0, file));
  report.current.text = result.text;
}

async function stream(report, style) {
  const result = streamText({ model: openrouterProvider(style).chat("local-image"), prompt: "a lighthouse",
                              onError: ({ error }) => { report.current.error = `${error.name}: ${error.message}`; } });
  for await (const part of result.fullStream) {
    if (part.type === "file") report.file(0, part.file);
  }
  report.current.text = await result.text;
}

async function openaiCompatibleText(report, style) {
  const gateway = createOpenAICompatible({
    name: "gateway", baseURL: BASE_URL, apiKey: KEY, headers: { "X-Gateway-Answer-Style": style },
    transformRequestBody: (body) => ({ ...body, modalities: ["image", "text"] }),
  });
  const result = await generateText({ model: gateway.chatModel("local-image"), prompt: "a lighthouse" });
  result.files.forEach((file) => report.file(0, file));
  report.current.text = result.text;
}

class FileReport extends Report {
  file(choice, file) { this.picture(choice, `data:${file.mediaType};base64,${file.base64}`); }
}

const report = new FileReport();
await report.run("generate-image-and-edit", readmeGenerateImage);
await report.run("readme-generate-text", readmeGenerateText);
for (const style of ["parts", "openrouter"]) {
  await report.run(`generate-text-${style}`, text, style, "local-image");
  await report.run(`stream-text-${style}`, stream, style);
  await report.run(`openai-compatible-generate-text-${style}`, openaiCompatibleText, style);
}
await report.run("generate-text-token-details-openrouter", text, "openrouter", "gemini-3.1-flash-image");
report.print();
