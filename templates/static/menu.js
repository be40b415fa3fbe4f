/* Op een smal scherm klapt het hoofdmenu in achter een knop "Menu". Zonder JavaScript
   blijft het hele menu zichtbaar; de knop verschijnt alleen als dit script draait. */
(function () {
  var knop = document.querySelector(".menuknop");
  if (!knop || !document.getElementById(knop.getAttribute("aria-controls"))) return;
  document.documentElement.classList.add("met-menuknop");
  knop.hidden = false;
  knop.addEventListener("click", function () {
    var open = knop.getAttribute("aria-expanded") === "true";
    knop.setAttribute("aria-expanded", open ? "false" : "true");
  });
})();
