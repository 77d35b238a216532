"""The Vercel AI SDK UI message stream: ``UIMessageChunk`` rules, the dialect and the
``UIMessage`` fold (AI SDK ``packages/ai/src/ui/process-ui-message-stream.ts``)."""
