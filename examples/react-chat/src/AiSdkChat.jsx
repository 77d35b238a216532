// The AI SDK page: `useChat` from @ai-sdk/react with `DefaultChatTransport` and
// `resume: true`, on the AI SDK routes of examples/chat/app.py:
//   POST   /api/chat                 send a turn; the answer streams back (409 while one runs)
//   GET    /api/chat/{id}/stream     the running answer from its start, then live (204: none)
//   DELETE /api/chat/{id}/stream     stop the running answer, for every tab (202 | 204)
//   GET    /api/chat/{id}/messages   the chat's history, rebuilt from the log
//
// A reload mid-answer: the history (the finished answers and the running answer's question)
// seeds `useChat`, then `resume: true` GETs the running answer, which replays from its
// `start` chunk. A second tab: while idle, the page asks for a running answer every
// FOLLOW_POLL_MS, so an answer started in another tab streams here too; its question comes
// with the history fetched when it starts. Whenever that GET finds nothing running (204),
// the page asks for the history again (a 304 while it is unchanged), so an answer that ended
// between two requests (a short one from another tab, or one that ended just as this page
// loaded) shows all the same.
//
// How an answer ended shows on it, the same live and after a reload: the server keeps it in
// the message's metadata (`{stopped: true}` or `{error: "<text>"}`); an error chunk a source
// sent itself is remembered here too while the page lives. "not sent" is only for a POST the
// server refused (nothing was stored): an answer that fails keeps its question.
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ChatShell } from "./ChatShell.jsx";

const API = "/api/chat";
const FOLLOW_POLL_MS = 1500;
const STOPPING = "stopping…";
const PAGE = { title: "React · AI SDK", page: "/react/", protocol: "ai-sdk" };

async function fetchHistory(chatId) {
  return (await fetchTaggedHistory(chatId)).messages;
}

/** The history and its ETag. The server answers the browser's If-None-Match with 304 while
 * nothing was appended, so asking again is cheap; the tag tells whether anything changed. */
async function fetchTaggedHistory(chatId) {
  const response = await fetch(`${API}/${encodeURIComponent(chatId)}/messages`);
  if (!response.ok) throw new Error(`history: HTTP ${response.status}`);
  return { tag: response.headers.get("etag"), messages: await response.json() };
}

/** `history` in its order, with the messages `current` already has kept as they are (they may
 * be further along), then the ones only `current` has. */
function mergeHistory(history, current) {
  const mine = new Map(current.map((message) => [message.id, message]));
  const stored = new Set(history.map((message) => message.id));
  return history
    .map((message) => mine.get(message.id) ?? message)
    .concat(current.filter((message) => !stored.has(message.id)));
}

function renderPart(part, key) {
  if (part.type === "text") return <div key={key} className="text">{part.text}</div>;
  if (part.type === "reasoning") {
    return (
      <details key={key} className="reasoning" open={part.state === "streaming"}>
        <summary>Reasoning</summary>
        <div>{part.text}</div>
      </details>
    );
  }
  if (part.type === "dynamic-tool" || part.type.startsWith("tool-")) {
    const name = part.toolName ?? part.type.slice(5);
    const detail = part.errorText ?? JSON.stringify(part.output ?? part.input ?? "");
    return <div key={key} className="tool">{`🔧 ${name} (${part.state}) ${detail}`}</div>;
  }
  return null; // step-start, sources, files, data parts: not shown in this example
}

/** Loads the chat's history, then mounts the chat with it. */
export function AiSdkPage({ chatId }) {
  const [history, setHistory] = useState(null);
  const [loadError, setLoadError] = useState("");
  useEffect(() => {
    let current = true;
    fetchHistory(chatId).then(
      (messages) => current && setHistory(messages),
      (error) => {
        if (!current) return;
        setLoadError(`could not load the history (${error.message})`);
        setHistory([]);
      },
    );
    return () => {
      current = false;
    };
  }, [chatId]);
  if (history === null) {
    return <ChatShell {...PAGE} chatId={chatId} items={[]} status="loading…" running={false} />;
  }
  return <AiSdkChat chatId={chatId} initialMessages={history} initialNote={loadError} />;
}

function AiSdkChat({ chatId, initialMessages, initialNote }) {
  const [note, setNote] = useState(initialNote);
  const [failed, setFailed] = useState({}); // message id -> error text of an answer that failed
  const sending = useRef(false);
  const sendFailed = useRef(false);
  const postStatus = useRef(null); // HTTP status of this tab's last POST (null: no answer)
  const lastError = useRef(null);
  const refreshHistory = useRef(() => {});
  const historyTag = useRef(null);
  const transport = useMemo(
    () =>
      new DefaultChatTransport({
        api: API,
        fetch: async (input, init) => {
          const response = await fetch(input, init);
          const method = (init?.method ?? "GET").toUpperCase();
          if (method === "POST") postStatus.current = response.status;
          // A resume (on mount, or the idle poll) that finds nothing running: the history
          // leaves a running answer out, so an answer that ended since the history was
          // fetched (between two polls, or between the history and the first resume) is
          // in neither. Fetch the history again; it is merged in when it changed.
          if (method === "GET" && response.status === 204) refreshHistory.current();
          return response;
        },
      }),
    [],
  );
  const { messages, setMessages, sendMessage, status, resumeStream } = useChat({
    id: chatId,
    messages: initialMessages,
    transport,
    resume: true,
    onError: (error) => {
      lastError.current = error;
      const refused = postStatus.current === null || postStatus.current >= 300;
      if (sending.current && refused) {
        // Not sent (409: another tab's answer is running): nothing was stored, so take the
        // question back.
        sendFailed.current = true;
        setMessages((current) => (current.at(-1)?.role === "user" ? current.slice(0, -1) : current));
        setNote(`not sent: ${error.message}`);
      } else if (error instanceof TypeError) {
        setNote(`connection lost (${error.message}); will resume`);
      }
    },
    onFinish: ({ message, isError, isDisconnect }) => {
      // An answer that ended with an error chunk: show the error on it.
      const refused = postStatus.current === null || postStatus.current >= 300;
      if (isError && !isDisconnect && lastError.current && !(sending.current && refused)) {
        const text = lastError.current.message;
        setFailed((current) => ({ ...current, [message.id]: text }));
      }
    },
  });
  const running = status === "submitted" || status === "streaming";
  refreshHistory.current = () =>
    fetchTaggedHistory(chatId).then(({ tag, messages: history }) => {
      if (tag !== null && tag === historyTag.current) return;
      historyTag.current = tag;
      setMessages((mine) => mergeHistory(history, mine));
    }, () => {});

  // While idle, follow an answer started elsewhere (204 while nothing runs).
  useEffect(() => {
    if (running) return undefined;
    const timer = setInterval(() => void resumeStream(), FOLLOW_POLL_MS);
    return () => clearInterval(timer);
  }, [running, resumeStream]);

  // When an answer starts streaming, bring in the history: a followed answer's question was
  // asked in another tab.
  useEffect(() => {
    if (status !== "streaming") return undefined;
    let current = true;
    fetchHistory(chatId).then(
      (history) => current && setMessages((mine) => mergeHistory(history, mine)),
      () => {},
    );
    return () => {
      current = false;
    };
  }, [status, chatId, setMessages]);

  const onSend = useCallback(
    async (text) => {
      setNote("");
      sending.current = true;
      sendFailed.current = false;
      postStatus.current = null;
      lastError.current = null;
      try {
        await sendMessage({ text });
      } finally {
        sending.current = false;
      }
      return !sendFailed.current;
    },
    [sendMessage],
  );

  const onStop = useCallback(async () => {
    // The stop route, not `stop()` of useChat: that only drops this tab's connection, while
    // the DELETE stops the model and ends the answer in every tab.
    try {
      const response = await fetch(`${API}/${encodeURIComponent(chatId)}/stream`, {
        method: "DELETE",
      });
      setNote(response.status === 202 ? STOPPING : "nothing to stop");
    } catch (error) {
      setNote(`stop failed (${error.message})`);
    }
  }, [chatId]);

  // "stopping…" lasts until the answer ends; any other note gives way to a new answer.
  useEffect(() => {
    setNote((current) => {
      if (current === STOPPING) return running ? current : "stopped";
      return running ? "" : current;
    });
  }, [running]);

  const last = messages.at(-1);
  const items = messages.map((message) => ({
    id: message.id,
    role: message.role,
    streaming: running && message === last && message.role === "assistant",
    body: message.parts.map(renderPart),
    error: message.metadata?.error ?? failed[message.id],
    stopped: Boolean(message.metadata?.stopped),
  }));
  // No "stopping…" once the answer has ended, whatever arrived first (the DELETE's 202 or
  // the stop terminal).
  const idle = note === STOPPING ? "stopped" : note || "ready";
  const statusText = running ? (note === STOPPING ? note : `${status}…`) : idle;
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
