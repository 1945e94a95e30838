// A classic script, so it runs where module scripts cannot: opened from file://, the page explains
// that it must be served (browsers refuse modules, workers and fetch from files).
if (location.protocol === "file:") {
  addEventListener("DOMContentLoaded", () => {
    document.documentElement.dataset.state = "error";
    document.getElementById("error-message").textContent =
      "This page was opened from a file. It must be served over HTTP: run `bitnet-wasm serve` on this folder " +
      "(or any static web server) and open the address it prints.";
    document.getElementById("error-panel").hidden = false;
    document.getElementById("download-text").textContent = "Not loaded: the page must be served.";
  });
}
