import { createRoot } from "react-dom/client";
import { chatIdFromUrl } from "./chat-id.js";
import { TanStackPage } from "./TanStackChat.jsx";
import "./styles.css";

createRoot(document.getElementById("root")).render(<TanStackPage chatId={chatIdFromUrl("t-")} />);
