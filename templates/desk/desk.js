// The desk's only script. Without it every form still works; with it the counter follows
// the typing (the count is the server's: no second implementation of the counting here)
// and a preview reloads itself when its source file is saved.
"use strict";

function csrfOf(form) {
  const field = form.querySelector('input[name="csrf"]');
  return field ? field.value : "";
}

function followCounter(form) {
  const area = form.querySelector("textarea[name=tekst]");
  const counter = document.getElementById("teller");
  if (!area || !counter) return;
  let timer = null;
  let asked = 0;
  const ask = async () => {
    const mine = ++asked;
    const body = new URLSearchParams({ tekst: area.value, csrf: csrfOf(form) });
    try {
      const answer = await fetch(form.dataset.tellen, {
        method: "POST",
        body,
        headers: { "X-CSRF-Token": csrfOf(form) },
        credentials: "same-origin",
      });
      if (!answer.ok || mine !== asked) return;
      const count = await answer.json();
      counter.querySelector(".aantal").textContent = count.tekst;
      counter.querySelector(".over").textContent = count.te_lang ? " (te lang)" : "";
      counter.classList.toggle("te-lang", count.te_lang);
    } catch (error) {
      // offline: the count shows after saving, as without the script
    }
  };
  area.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(ask, 150);
  });
}

function followSource(marker) {
  const url = marker.dataset.versie;
  let known = marker.dataset.huidig;
  setInterval(async () => {
    try {
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!answer.ok) return;
      const now = (await answer.json()).versie;
      if (now !== known) {
        known = now;
        window.location.reload();
      }
    } catch (error) {
      // the desk is restarting: try again next second
    }
  }, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-tellen]").forEach(followCounter);
  document.querySelectorAll("[data-versie]").forEach(followSource);
});
