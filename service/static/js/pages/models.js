// #/models: every trained model, what it is, how well it did, where it is served.
import {api} from "../api.js";
import {esc, html, pct, when} from "../dom.js";

export default async function modelsPage({view}) {
  view.innerHTML = `<h1>Models</h1><div id="list"></div>`;
  const models = await api("GET", "/models");
  view.querySelector("#list").innerHTML = models.length ? html`<table id="models"><tr><th>id</th><th>preset</th>
    <th>classes</th><th>frames</th><th>size</th><th>val acc</th><th>test acc</th><th>served by</th><th>created</th></tr>
    ${models.map(row).join("")}</table>` : `<p class="muted">No models yet: <a href="#/train">train one</a>.</p>`;
}

const servedBy = (m) => [...new Set(m.inference.map((s) => `${s.backend} ${s.precision || ""}`))].join(", ") || "–";

const row = (m) => html`<tr><td><a href="#/models/${esc(m.id)}">${esc(m.id)}</a></td><td>${esc(m.preset || m.arch)}</td>
  <td class="num">${m.classes.length}</td><td class="num">${m.frames}</td><td class="num">${m.image_size}</td>
  <td class="num">${pct(m.best_val_acc)}</td><td class="num">${pct(m.test_acc)}</td><td>${esc(servedBy(m))}</td>
  <td>${when(m.created_at)}</td></tr>`;
