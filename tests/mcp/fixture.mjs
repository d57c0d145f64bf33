#!/usr/bin/env node
// An MCP server (stdio) with the tools the proxy's fault tests need, on the official SDK:
//   fail      answers with isError: true
//   crash     throws (a JSON-RPC error)
//   hang      never answers: writes "started" to the marker file, and "cancelled" when the
//             client cancels the call
//   huge      answers with 10 MB of text
//   slow      answers after `ms` milliseconds (the browser test's visible status)
//   add-tool  registers the tool `late` and says the tool list changed
// Usage: node fixture.mjs MARKER_FILE
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { writeFileSync } from "node:fs";

const marker = process.argv[2];
const object = (properties = {}) => ({ type: "object", properties });
const tools = [
  { name: "fail", description: "Always fails", inputSchema: object() },
  { name: "crash", description: "Throws", inputSchema: object() },
  { name: "hang", description: "Never answers", inputSchema: object() },
  { name: "huge", description: "Returns 10 MB", inputSchema: object() },
  {
    name: "slow",
    description: "Answers after a pause",
    inputSchema: object({ ms: { type: "number" } }),
  },
  { name: "add-tool", description: "Adds the tool late", inputSchema: object() },
  { name: "whoami", description: "Says which fixture answered", inputSchema: object() },
];

const server = new Server(
  { name: "deepchat-proxy-fixture", version: "1.0.0" },
  { capabilities: { tools: { listChanged: true } } },
);

server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }));

server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
  const text = (t) => ({ content: [{ type: "text", text: t }] });
  switch (request.params.name) {
    case "fail":
      return { ...text("the disk is on fire"), isError: true };
    case "crash":
      throw new Error("fixture crashed");
    case "hang":
      return new Promise(() => {
        const cancelled = () => marker && writeFileSync(marker, "cancelled");
        if (marker) writeFileSync(marker, "started");
        // The cancellation may have been read before this handler ran.
        if (extra.signal.aborted) cancelled();
        else extra.signal.addEventListener("abort", cancelled);
      });
    case "huge":
      return text("x".repeat(10 * 1024 * 1024));
    case "slow": {
      const ms = Number(request.params.arguments?.ms ?? 1000);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return text(`slept ${ms} ms`);
    }
    case "add-tool":
      if (!tools.some((t) => t.name === "late")) {
        tools.push({ name: "late", description: "Added later", inputSchema: object() });
        await server.sendToolListChanged();
      }
      return text("added");
    case "whoami":
      return text(`fixture ${marker}`);
    case "late":
      return text("late tool ran");
    default:
      throw new Error(`unknown tool ${request.params.name}`);
  }
});

await server.connect(new StdioServerTransport());
