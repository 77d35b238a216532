// Vite config of the React example. `npm run build` writes dist/, which examples/chat/app.py
// serves at /react/ (hence `base`). `npm run dev` serves the pages on Vite's dev server and
// proxies the API to the example app (CHAT_API, default http://127.0.0.1:8000).
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const api = process.env.CHAT_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/react/",
  plugins: [react()],
  resolve: {
    alias: {
      // The TanStack connection adapter the Python package ships, bundled from its source so
      // the page always runs the adapter the tests cover. In your own app, copy the file.
      "resumable-chat/tanstack-connection": here(
        "../../src/resumable_chat/static/tanstack-connection.js",
      ),
    },
  },
  build: {
    rolldownOptions: {
      input: { aisdk: here("index.html"), tanstack: here("tanstack/index.html") },
    },
  },
  server: {
    proxy: { "/api": api },
    fs: { allow: [here("."), here("../../src/resumable_chat/static")] },
  },
});
