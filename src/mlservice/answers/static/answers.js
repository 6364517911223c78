// Show the weight slider's value as it moves. Without JavaScript the page still works:
// the server renders the submitted value into the same <output>.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const slider = document.getElementById("weight");
  const output = document.getElementById("weight-value");
  if (!slider || !output) return;
  slider.addEventListener("input", () => {
    output.value = Number(slider.value).toString();
  });
});
