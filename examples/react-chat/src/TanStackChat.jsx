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
  const sending = useRef(false);
  const sendFailed = useRef(false);
  const connection = useMemo(
    () =>
      createResumableConnection({
        sendUrl: API,
        stopUrl: API,
        subscribeUrl: `${API}/replay?id=${encodeURIComponent(chatId)}`,
        body: { id: chatId },
      }),
    [chatId],
  );
  const { messages, sendMessage, stop, sessionGenerating, isLoading, setMessages } = useChat({
    connection,
    live: true,
    onError: (error) => {
      if (sending.current) {
        sendFailed.current = true;
        setNote(`not sent: ${error.message}`);
      } else {
        setNote(`connection problem (${error.message})`);
      }
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
      sending.current = true;
      sendFailed.current = false;
      const before = messages;
      try {
        await sendMessage(text);
      } catch (error) {
        sendFailed.current = true;
        setNote(`not sent: ${error.message}`);
      } finally {
        sending.current = false;
      }
      // Not sent (409: another tab's run is live): take the question back.
      if (sendFailed.current) setMessages(before);
      return !sendFailed.current;
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
  }));
  const statusText = running ? (note === STOPPING ? note : "generating…") : note || "ready";
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
