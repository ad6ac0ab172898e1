/**
 * The demo page's HTML and CSS; its script (`page.ts`, bundled to `page.js` at
 * build time) fills the elements named by id.
 */
export const pageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>effect-sse-resume demo</title>
<style>
  :root { --ink: #1d2430; --muted: #5d6778; --line: #dde2ea; --bg: #f5f7fa; --accent: #2358c4; --ok: #1e7d4f; --warn: #b3541e; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
  main { max-width: 960px; margin: 0 auto; padding: 24px 20px 40px; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 24px 0 8px; }
  p.lead { margin: 0 0 16px; color: var(--muted); }
  code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
  .bar { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
  .bar .url { flex: 1 1 320px; overflow-wrap: anywhere; }
  .badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 13px; font-weight: 600; background: #e8edf6; color: var(--accent); }
  .badge.connected { background: #e3f4ea; color: var(--ok); }
  .badge.reconnecting, .badge.failed { background: #fbeadf; color: var(--warn); }
  button { font: inherit; font-size: 13px; padding: 4px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
  button:hover { border-color: var(--accent); color: var(--accent); }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin-top: 16px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
  .card .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .05em; }
  .card .value { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; margin-top: 2px; }
  .card .value.small { font-size: 18px; padding-top: 6px; }
  .cols { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.2fr); gap: 20px; }
  @media (max-width: 720px) { .cols { grid-template-columns: 1fr; } }
  table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
  th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; }
  th { font-size: 12px; color: var(--muted); font-weight: 600; background: #fafbfd; }
  tr:last-child td { border-bottom: 0; }
  ol#events { list-style: none; margin: 0; padding: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
  ol#events li { display: flex; gap: 12px; padding: 4px 12px; border-bottom: 1px solid var(--line); }
  ol#events li:last-child { border-bottom: 0; }
  ol#events .id { min-width: 64px; color: var(--accent); font-weight: 600; }
  ol#events .type { min-width: 40px; color: var(--muted); }
  #error { display: none; margin-top: 12px; padding: 10px 14px; border-radius: 8px; background: #fdecea; color: #8a1c12; }
  #error.shown { display: block; }
  p.hint { color: var(--muted); font-size: 13px; margin: 12px 2px 0; }
  footer { margin-top: 28px; color: var(--muted); font-size: 13px; }
</style>
</head>
<body>
<main>
  <h1>effect-sse-resume in the browser</h1>
  <p class="lead">This tab tails an SSE stream with <code>SseClient</code> over <code>FetchHttpClient</code>.
  Each new event is shown once: replays after a reconnect are dropped by the tracker, and the cursor kept in
  <code>localStorage</code> makes a reload resume after the last event shown.</p>
  <div class="bar">
    <span class="badge" id="status">starting</span>
    <span class="url mono" id="url"></span>
    <button id="forget" type="button" title="Forget the stored cursor and this tab's log, then reload">Start over</button>
  </div>
  <div id="error" class="mono"></div>
  <div class="cards">
    <div class="card"><div class="label">Delivered (this load)</div><div class="value" id="delivered">0</div></div>
    <div class="card"><div class="label">Duplicates dropped</div><div class="value" id="duplicates">0</div></div>
    <div class="card"><div class="label">Reconnects</div><div class="value" id="reconnects">0</div></div>
    <div class="card"><div class="label">Stored cursor</div><div class="value small mono" id="cursor">none</div></div>
  </div>
  <div class="cols">
    <section>
      <h2>Loads of this tab</h2>
      <table>
        <thead><tr><th>Load</th><th>Resumed after</th><th>First</th><th>Last</th><th>Events</th></tr></thead>
        <tbody id="loads"></tbody>
      </table>
      <p class="hint">Reload the page at any moment: the next load resumes after the stored cursor, so its first id
      is the one after the last id shown before, with none shown twice. The demo server replays a few events on
      each resume, and cuts connections with <code>--drop-every N</code>; the tracker drops the replays
      (<em>duplicates dropped</em>).</p>
    </section>
    <section>
      <h2>Latest events</h2>
      <ol id="events"></ol>
    </section>
  </div>
  <footer>Served by <code>sse-resume serve-demo --ui</code>. Add <code>?url=</code> to tail another stream,
  <code>?session=</code> to keep another cursor.</footer>
</main>
<script type="module" src="/page.js"></script>
</body>
</html>
`
