// Passkeys (WebAuthn) for flaskr: runs the forms marked data-ceremony, "create" (add a
// passkey) and "get" (sign in with one). Each posts its fields to data-options for the
// browser's options, hands them to the authenticator, and posts the answer, as JSON in the
// field "credential", to the form's action; the server's JSON says where to go next, or what
// went wrong. WebAuthn speaks bytes and the server base64url: the conversions are here.
// Without WebAuthn the forms stay hidden and the page's note says passkeys are unavailable.
// A file of the site's own, never inline script: the Content-Security-Policy allows only these.
"use strict";

(() => {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return; // the notes stay, the forms stay hidden
  }

  // base64url text to bytes, and back (unpadded, as the server sends and expects it).
  const toBytes = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
  };
  const toText = (buffer) => {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) {
      binary += String.fromCharCode(byte);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const withIds = (list) => (list || []).map((c) => ({ ...c, id: toBytes(c.id) }));

  // The server's options (JSON) as the browser takes them.
  const creationOptions = (json) => ({
    ...json,
    challenge: toBytes(json.challenge),
    user: { ...json.user, id: toBytes(json.user.id) },
    excludeCredentials: withIds(json.excludeCredentials),
  });
  const requestOptions = (json) => ({
    ...json,
    challenge: toBytes(json.challenge),
    allowCredentials: withIds(json.allowCredentials),
  });

  // The authenticator's answer as JSON for the server (WebAuthn's own JSON form).
  const answer = (credential, response) => ({
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment,
    clientExtensionResults: credential.getClientExtensionResults(),
    response,
  });
  const created = (credential) =>
    answer(credential, {
      clientDataJSON: toText(credential.response.clientDataJSON),
      attestationObject: toText(credential.response.attestationObject),
      transports: credential.response.getTransports ? credential.response.getTransports() : [],
    });
  const asserted = (credential) =>
    answer(credential, {
      clientDataJSON: toText(credential.response.clientDataJSON),
      authenticatorData: toText(credential.response.authenticatorData),
      signature: toText(credential.response.signature),
      userHandle: credential.response.userHandle ? toText(credential.response.userHandle) : null,
    });

  // A POST of form data; the JSON answer, or an Error with the server's message.
  const post = async (url, body) => {
    const response = await fetch(url, {
      method: "POST",
      body,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    let json = null;
    try {
      json = await response.json();
    } catch {
      json = null;
    }
    if (!response.ok || json === null) {
      const said = json && json.message;
      throw new Error(said || `The site answered ${response.status}: reload the page and try again.`);
    }
    return json;
  };

  const run = async (form) => {
    const error = form.querySelector(".passkey-error");
    const button = form.querySelector("button");
    error.hidden = true;
    button.disabled = true;
    try {
      const create = form.dataset.ceremony === "create";
      const json = await post(form.dataset.options, new URLSearchParams(new FormData(form)));
      const credential = create
        ? await navigator.credentials.create({ publicKey: creationOptions(json) })
        : await navigator.credentials.get({ publicKey: requestOptions(json) });
      const body = new URLSearchParams({
        credential: JSON.stringify(create ? created(credential) : asserted(credential)),
      });
      const token = form.elements.namedItem("csrf_token"); // none where CSRF is off
      if (token) {
        body.set("csrf_token", token.value);
      }
      const next = await post(form.action, body);
      window.location.assign(next.redirect);
    } catch (problem) {
      error.textContent =
        problem.name === "NotAllowedError"
          ? "No passkey was used: it was cancelled, timed out, or this device has none for this site."
          : problem.message;
      error.hidden = false;
      button.disabled = false;
    }
  };

  for (const note of document.querySelectorAll("[data-passkeys-unavailable]")) {
    note.hidden = true;
  }
  for (const form of document.querySelectorAll("form[data-ceremony]")) {
    form.hidden = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      run(form);
    });
  }
})();
