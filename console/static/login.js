"use strict";
document.getElementById("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("signin-error");
  error.textContent = "";
  const resp = await fetch("/console/api/signin", {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-Requested-With": "safecity-console"},
    body: JSON.stringify({name: document.getElementById("name").value,
                          password: document.getElementById("password").value}),
  });
  if (resp.ok) { window.location.replace("/"); return; }
  const body = await resp.json().catch(() => ({}));
  error.textContent = body.error || `sign-in failed (${resp.status})`;
  document.getElementById("password").value = "";
});
