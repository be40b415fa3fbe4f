/* De zoekpagina: zoekt met Pagefind in de delen van de zoekindex (het eerste deel
   heeft de scripts, de andere worden erbij gevoegd) en toont titel, datum, traject en
   een fragment. De zoekterm staat in het adres (?q=), zodat het zoekveld bovenaan elke
   pagina hierheen kan sturen en een resultaat te delen is. */
const lijst = document.getElementById("zoekresultaten");
const status = document.getElementById("zoekstatus");
const veld = document.getElementById("zoekterm");
const meer = document.getElementById("meer");
const formulier = document.getElementById("zoekformulier");
const bundels = lijst.dataset.bundels.split(" ").filter(Boolean);
const PER_KEER = 20;
let pagefind = null;
let gevonden = [];
let getoond = 0;
let zoekopdracht = 0;

async function index() {
  if (pagefind === null) {
    const module = await import(bundels[0] + "pagefind.js");
    await module.options({ baseUrl: lijst.dataset.basis, excerptLength: 30 });
    for (const bundel of bundels.slice(1)) {
      await module.mergeIndex(bundel);
    }
    await module.filters(); // laadt de filters, zodat een zoekopdracht per deel telt
    pagefind = module;
  }
  return pagefind;
}

function resultaat(data) {
  const li = document.createElement("li");
  li.className = "zoekresultaat";
  const kop = document.createElement("h2");
  const link = document.createElement("a");
  link.href = data.url;
  link.textContent = data.meta.title || data.url;
  kop.append(link);
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = [data.meta.datum, data.meta.traject].filter(Boolean).join(" · ");
  const fragment = document.createElement("p");
  // Pagefind geeft het fragment als HTML: de tekst ontsnapt, alleen <mark> om de treffers.
  fragment.innerHTML = data.excerpt;
  li.append(kop, meta, fragment);
  return li;
}

// Pagefind vindt een woord ook als het alleen het begin van een langer woord is; een deel
// van de index dat geen enkel woord met dat begin heeft, antwoordt met woorden die het
// begin van de zoekterm zijn ("woon" voor "woonafspraken"). Eén index voor de hele site
// doet dat alleen als het woord nergens staat; met een index in delen doet elk deel het
// voor zich. Daarom wordt per deel met een treffer nagegaan of die treffer de zoekwoorden
// echt bevat; delen die alleen zo'n terugvaltreffer hebben, vallen weg zolang een ander
// deel het woord wel heeft.
function kern(woord) {
  return woord
    .toLocaleLowerCase("nl")
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^\p{L}\p{N}]/gu, "");
}

function gedeeld(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function bevatZoekwoorden(data, termen) {
  const woorden = (data.raw_content || data.content || "").split(/[\r\n\s]+/g);
  const geraakt = data.locations.map((i) => kern(woorden[i] || ""));
  // Een Nederlandse stam is het woord zonder een uitgang van hoogstens vijf letters.
  return termen.every((t) => {
    const nodig = Math.min(t.length, Math.max(3, t.length - 5));
    return geraakt.some((w) => gedeeld(w, t) >= nodig);
  });
}

async function echteTreffers(pf, term) {
  const termen = term.split(/\s+/).map(kern).filter(Boolean);
  const alle = await pf.search(term);
  const perDeel = (alle.filters && alle.filters.deel) || {};
  const delen = Object.keys(perDeel).filter((d) => perDeel[d] > 0);
  if (delen.length === 0 || termen.length === 0) return { uitkomst: alle, echt: true };
  const echt = [];
  for (const deel of delen) {
    const proef = await pf.search(term, { filters: { deel } });
    if (proef.results.length && bevatZoekwoorden(await proef.results[0].data(), termen)) {
      echt.push(deel);
    }
  }
  if (echt.length === 0) return { uitkomst: alle, echt: false };
  if (echt.length === delen.length) return { uitkomst: alle, echt: true };
  return { uitkomst: await pf.search(term, { filters: { deel: { any: echt } } }), echt: true };
}

async function toonMeer() {
  const volgende = gevonden.slice(getoond, getoond + PER_KEER);
  const data = await Promise.all(volgende.map((r) => r.data()));
  for (const d of data) lijst.append(resultaat(d));
  getoond += volgende.length;
  meer.hidden = getoond >= gevonden.length;
}

async function zoek(term) {
  const nummer = ++zoekopdracht;
  lijst.replaceChildren();
  meer.hidden = true;
  gevonden = [];
  getoond = 0;
  if (!term.trim()) {
    status.textContent = "";
    return;
  }
  if (bundels.length === 0) {
    status.textContent = "Er staan nog geen berichten op de site.";
    return;
  }
  status.textContent = "Bezig met zoeken…";
  let uitkomst;
  let echt;
  try {
    ({ uitkomst, echt } = await echteTreffers(await index(), term));
  } catch (fout) {
    status.textContent = "Zoeken lukt nu niet. Probeer het later opnieuw, of blader door het archief.";
    return;
  }
  if (nummer !== zoekopdracht) return; // er is intussen opnieuw gezocht
  gevonden = uitkomst.results;
  const n = gevonden.length;
  const aantal = `${n} ${n === 1 ? "resultaat" : "resultaten"}`;
  await toonMeer();
  if (nummer !== zoekopdracht) return;
  // Pas als de resultaten er staan: een schermlezer leest de status voor.
  status.textContent =
    n === 0
      ? `Geen resultaten voor ‘${term}’.`
      : echt
        ? `${aantal} voor ‘${term}’.`
        : `Geen berichten met ‘${term}’; wel ${aantal} met een woord dat erop lijkt.`;
}

formulier.addEventListener("submit", (event) => {
  event.preventDefault();
  const term = veld.value;
  const adres = new URL(window.location.href);
  adres.searchParams.set("q", term);
  history.replaceState(null, "", adres);
  zoek(term);
});
meer.addEventListener("click", toonMeer);

const beginterm = new URLSearchParams(window.location.search).get("q") || "";
if (beginterm) {
  veld.value = beginterm;
  zoek(beginterm);
}
