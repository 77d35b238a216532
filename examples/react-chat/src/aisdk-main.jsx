import { createRoot } from "react-dom/client";
import { AiSdkPage } from "./AiSdkChat.jsx";
import { chatIdFromUrl } from "./chat-id.js";
import "./styles.css";

createRoot(document.getElementById("root")).render(<AiSdkPage chatId={chatIdFromUrl("c-")} />);
