// shoplens gallery: the little JavaScript the page needs. Browsing, filters, paging and text search are
// plain links and forms that work without it; the photo search posts to the JSON API and draws the answer.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A filter takes effect as soon as it is chosen.
  for (const input of document.querySelectorAll("[data-autosubmit]")) {
    input.addEventListener("change", () => input.form.submit());
  }
  // On a phone the filters fold away, so the products come first, unless one is on.
  const panel = document.getElementById("filter-panel");
  if (panel && !panel.hasAttribute("data-active") && window.matchMedia("(max-width: 799px)").matches) {
    panel.open = false;
  }
  const zone = document.getElementById("dropzone");
  if (zone) photoSearch(zone);
});

// "product_category" -> "Product category", "baseColour" -> "Base colour", as the server's label filter does.
function label(name) {
  const words = name.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/_/g, " ").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function photoSearch(zone) {
  const input = document.getElementById("photo");
  const title = document.getElementById("photo-title-input");
  const sameCategory = document.getElementById("same-category");
  const status = document.getElementById("photo-status");
  const result = document.getElementById("photo-result");
  let photo = null;

  function setStatus(text, isError = false) {
    status.textContent = text;
    status.classList.toggle("error", isError);
  }

  async function search() {
    if (!photo) return;
    const form = new FormData();
    form.append("image", photo);
    if (title.value.trim()) form.append("title", title.value.trim());
    form.append("same_category", sameCategory.checked ? "1" : "0");
    setStatus("Looking at your photo…");
    let response, data;
    try {
      response = await fetch(zone.dataset.api, { method: "POST", body: form });
      data = await response.json();
    } catch (err) {
      setStatus(`The server did not answer (${err.message}).`, true);
      return;
    }
    if (!response.ok) {
      result.hidden = true;
      setStatus(data.error || `The server answered ${response.status}.`, true);
      return;
    }
    showPrediction(data.prediction);
    showCards(document.getElementById("similar"), data.similar || []);
    result.hidden = false;
    showCrop(data.crop); // once shown: a hidden preview has no size to scale the box to
    setStatus(`${(data.similar || []).length} similar products` +
              (sameCategory.checked ? " in the predicted category." : "."));
  }

  function choose(file) {
    if (!file) return;
    photo = file;
    const preview = document.getElementById("photo-preview");
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    showCrop(null);
    search();
  }

  zone.addEventListener("click", (event) => {
    if (event.target.tagName !== "LABEL" && event.target !== input) input.click();
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    choose(event.dataTransfer.files[0]);
  });
  input.addEventListener("change", () => choose(input.files[0]));
  sameCategory.addEventListener("change", search);
  title.addEventListener("change", search);
}

const percent = (probability) => `${Math.round(probability * 100)}%`;

// The predicted path with its probability, and each level's best classes as small bars.
function showPrediction(prediction) {
  document.getElementById("predicted-path").textContent =
    `${prediction.category} (${percent(prediction.probability)})`;
  const levels = document.getElementById("predicted-levels");
  levels.replaceChildren();
  for (const [name, classes] of Object.entries(prediction.levels)) {
    const dt = document.createElement("dt");
    dt.textContent = label(name);
    const dd = document.createElement("dd");
    classes.forEach((cls, i) => {
      const span = document.createElement("span");
      span.className = i === 0 ? "prob best" : "prob";
      span.style.setProperty("--p", percent(cls.probability));
      span.textContent = `${cls.name} ${percent(cls.probability)}`;
      dd.append(span);
    });
    levels.append(dt, dd);
  }
}

// The box the server cropped the photo to (in the photo's pixels), drawn over the preview, which shows the
// whole photo fitted inside its square (object-fit: contain).
function showCrop(crop) {
  const frame = document.getElementById("photo-crop");
  frame.hidden = !crop;
  if (!crop) return;
  const preview = document.getElementById("photo-preview");
  const scale = Math.min(preview.clientWidth / crop.width, preview.clientHeight / crop.height);
  const left = preview.offsetLeft + preview.clientLeft + (preview.clientWidth - crop.width * scale) / 2;
  const top = preview.offsetTop + preview.clientTop + (preview.clientHeight - crop.height * scale) / 2;
  const [x0, y0, x1, y1] = crop.box;
  Object.assign(frame.style, {
    left: `${left + x0 * scale}px`, top: `${top + y0 * scale}px`,
    width: `${(x1 - x0) * scale}px`, height: `${(y1 - y0) * scale}px`,
  });
}

function showCards(list, items) {
  const template = document.getElementById("card-template");
  list.replaceChildren();
  for (const item of items) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.querySelector("a").href = item.url;
    const img = card.querySelector("img");
    img.src = item.thumbnail;
    img.alt = item.title || item.category;
    card.querySelector(".card-title").textContent = item.title || item.id;
    card.querySelector(".card-category").textContent = item.category;
    card.querySelector(".card-score").textContent = item.score === undefined ? "" : item.score.toFixed(2);
    list.append(card);
  }
}
