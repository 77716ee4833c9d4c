// Stands in for the `ws` package in the browser build (vite.config.ts): browsers have WebSocket.
export default globalThis.WebSocket
