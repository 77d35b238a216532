// The page frame both React pages share: header (chat id, links), the transcript and the
// composer (input, Send, Stop). It knows nothing about either protocol: each page passes its
// messages already rendered as `{id, role, streaming, error, stopped, body}` items: `error`
// (text) and `stopped` (boolean) say how an answer ended, shown under it as a `.mark`.
//
// The element ids and classes (#log, .msg.user / .msg.assistant, .streaming, #status, #input,
// #send, #stop, #chat-id) are the ones the plain pages of examples/chat use, so the browser
// tests drive all four pages the same way. The composer is there once the page can send
// (`onSend` given): a page still loading its history shows none, so nothing typed then is
// lost when the chat mounts.
import { useState } from "react";

// The other pages of the example app. A link to a page of the same protocol keeps the chat id
// (the same chat, another front end); the other protocol's chats are separate.
const PAGES = [
  { href: "/react/", protocol: "ai-sdk", label: "React · AI SDK" },
  { href: "/react/tanstack/", protocol: "tanstack", label: "React · TanStack AI" },
  { href: "/", protocol: "ai-sdk", label: "plain AI SDK page" },
  { href: "/tanstack", protocol: "tanstack", label: "plain TanStack page" },
];

function linkTo(page, protocol, chatId) {
  return page.protocol === protocol ? `${page.href}?chat=${encodeURIComponent(chatId)}` : page.href;
}

export function ChatShell({ title, page, protocol, chatId, items, status, running, onSend, onStop }) {
  const [text, setText] = useState("");

  const submit = async (event) => {
    event.preventDefault();
    const value = text.trim();
    if (!value || running) return;
    setText("");
    const sent = await onSend(value);
    if (sent === false) setText((current) => current || value); // not sent: give it back
  };

  return (
    <>
      <header>
        <h1>{title}</h1>
        <code id="chat-id">{chatId}</code>
        <span id="status" role="status">
          {status}
        </span>
      </header>
      <nav>
        <a href="?">new chat</a>
        {PAGES.filter((other) => other.href !== page).map((other) => (
          <a key={other.href} href={linkTo(other, protocol, chatId)}>
            {other.label}
          </a>
        ))}
      </nav>
      <main id="log" aria-live="polite">
        {items.map((item) => (
          <div
            key={item.id}
            className={`msg ${item.role}${item.streaming ? " streaming" : ""}`}
            data-message-id={item.id}
          >
            {item.body}
            {item.error ? (
              <div className="mark error">{item.error}</div>
            ) : item.stopped ? (
              <div className="mark stopped">stopped</div>
            ) : null}
          </div>
        ))}
      </main>
      {onSend ? (
        <form id="form" onSubmit={submit}>
          <input
            id="input"
            autoComplete="off"
            placeholder="Say something…"
            required
            value={text}
            onChange={(event) => setText(event.target.value)}
          />
          <button id="send" type="submit" disabled={running}>
            Send
          </button>
          <button id="stop" type="button" disabled={!running} onClick={onStop}>
            Stop
          </button>
        </form>
      ) : null}
    </>
  );
}
