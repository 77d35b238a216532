// The TanStack AI page: `useChat` from @tanstack/ai-react with `live: true` on the connection
// adapter resumable-chat ships (createResumableConnection, src/resumable_chat/static/
// tanstack-connection.js, also served by the example app at /tanstack-connection.js), on the
// TanStack session routes of examples/chat/app.py:
//   POST   /api/tanstack/chat               {id, messages}: start a run (202; 409 while one runs)
//   GET    /api/tanstack/chat/replay?id=    one MESSAGES_SNAPSHOT, the running run, then live
//   DELETE /api/tanstack/chat               {id}: stop the running run, for every tab (202 | 204)
//
// The page keeps one live subscription: a reload starts from the snapshot and the running
// run's chunks, a second tab sees every run as it streams, and the adapter reconnects from
// its cursor (the last SSE id) after a dropped connection, so nothing arrives twice.
//
// How an answer ended shows on it, the same live and after a reload: the server keeps it in
// the message's metadata (`{stopped: true}` or `{error: "<text>"}`, in the snapshot and on the
// terminal's TEXT_MESSAGE_END); a RUN_ERROR a source sent itself is remembered here too while
// the page lives. "not sent" is only for a POST the server refused (nothing was stored): a
// run that fails keeps its question, so sending again never stores it twice.
import { useChat } from "@tanstack/ai-react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { createResumableConnection } from "resumable-chat/tanstack-connection";
import { ChatShell } from "./ChatShell.jsx";

const API = "/api/tanstack/chat";
const STOPPING = "stopping…";
const PAGE = { title: "React · TanStack AI", page: "/react/tanstack/", protocol: "tanstack" };

function renderPart(part, key) {
  if (part.type === "text") return <div key={key} className="text">{part.content}</div>;
  if (part.type === "thinking") {
    return (
      <details key={key} className="reasoning">
        <summary>Thinking</summary>
        <div>{part.content}</div>
      </details>
    );
  }
  if (part.type === "tool-call") {
    const detail = part.output ?? part.arguments ?? "";
    const shown = typeof detail === "string" ? detail : JSON.stringify(detail);
    return <div key={key} className="tool">{`🔧 ${part.name} (${part.state}) ${shown}`}</div>;
  }
  return null; // tool results and media parts: not shown in this example
}

export function TanStackPage({ chatId }) {
  const [note, setNote] = useState("");
  const [failed, setFailed] = useState({}); // message id -> error text of a run that failed
  const sendError = useRef(null); // why this tab's last POST was refused (null: it was not)
  const answering = useRef(null); // the assistant message the current run writes to
  const runError = useRef(null); // the text of the last RUN_ERROR seen
  const connection = useMemo(() => {
    const adapter = createResumableConnection({
      sendUrl: API,
      stopUrl: API,
      subscribeUrl: `${API}/replay?id=${encodeURIComponent(chatId)}`,
      body: { id: chatId },
    });
    const send = adapter.send;
    adapter.send = async (...args) => {
      try {
        return await send(...args);
      } catch (error) {
        sendError.current = error; // refused: nothing was stored
        throw error;
      }
    };
    return adapter;
  }, [chatId]);
  const { messages, sendMessage, stop, sessionGenerating, isLoading, setMessages } = useChat({
    connection,
    live: true,
    onChunk: (chunk) => {
      if (chunk.type === "RUN_STARTED") {
        answering.current = null;
      } else if (chunk.type === "TEXT_MESSAGE_START" && (chunk.role ?? "assistant") === "assistant") {
        answering.current = chunk.messageId;
      } else if (chunk.type === "RUN_ERROR") {
        const text = chunk.message ?? chunk.error?.message ?? "An error occurred.";
        runError.current = text;
        const id = answering.current;
        if (id) setFailed((current) => ({ ...current, [id]: text }));
      }
    },
    onError: (error) => {
      // A refused POST is reported by onSend; a RUN_ERROR shows on its answer.
      if (sendError.current || error.message === runError.current) return;
      setNote(`connection problem (${error.message})`);
    },
  });
  const running = sessionGenerating || isLoading;

  useEffect(() => {
    setNote((current) => {
      if (current === STOPPING) return running ? current : "stopped";
      return running ? "" : current;
    });
  }, [running]);

  const onSend = useCallback(
    async (text) => {
      setNote("");
      sendError.current = null;
      runError.current = null;
      const before = messages;
      try {
        await sendMessage(text);
      } catch (error) {
        sendError.current ??= error;
      }
      const refused = sendError.current;
      if (!refused) return true;
      // Not sent (409: another tab's run is live): nothing was stored, take the question back.
      setMessages(before);
      setNote(`not sent: ${refused.message}`);
      return false;
    },
    [messages, sendMessage, setMessages],
  );

  const onStop = useCallback(async () => {
    // stop() ends this tab's request; connection.stop() DELETEs, which stops the run on the
    // server and ends it with RUN_FINISHED {finishReason: "stop"} in every tab.
    stop();
    try {
      const status = await connection.stop();
      setNote(status === 202 ? STOPPING : "nothing to stop");
    } catch (error) {
      setNote(`stop failed (${error.message})`);
    }
  }, [stop, connection]);

  const lastAssistant = messages.findLast((message) => message.role === "assistant");
  const items = messages.map((message) => ({
    id: message.id,
    role: message.role,
    streaming: running && message === lastAssistant && message === messages.at(-1),
    body: message.parts.map(renderPart),
    error: message.metadata?.error ?? failed[message.id],
    stopped: Boolean(message.metadata?.stopped),
  }));
  // No "stopping…" once the run has ended, whatever arrived first (the DELETE's 202 or the
  // run's RUN_FINISHED).
  const idle = note === STOPPING ? "stopped" : note || "ready";
  const statusText = running ? (note === STOPPING ? note : "generating…") : idle;
  return (
    <ChatShell
      {...PAGE}
      chatId={chatId}
      items={items}
      status={statusText}
      running={running}
      onSend={onSend}
      onStop={onStop}
    />
  );
}
