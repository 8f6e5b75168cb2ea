// Gatekeeper console: the little JavaScript passkeys need (no build step, no inline script).
//
// 1. A form with data-sign="passkey" (every decision form of the release page): on submit, ask
//    POST /releases/{id}/prepare for the WebAuthn challenge of the exact request the form will
//    send (the page's "seen" field is what the person saw: stage, artifact and evidence digests;
//    the form's "passkey" choice, when the person has several, names the key), have that
//    passkey sign it (navigator.credentials.get, user verification required), put the
//    assertion into the form's hidden fields and submit it. The worker checks the assertion.
// 2. The passkey page: register a passkey (navigator.credentials.create); the server keeps it as
//    a pending enrollment that an identity admin approves.
// 3. Countdowns ([data-countdown]) tick.
"use strict";

(function () {
  const SIGNATURE_FIELDS = [
    "csrf_token", "action", "seen", "mode", "signed_at", "nonce", "key_id", "credential_id",
    "authenticator_data", "client_data_json", "signature", "passkey",
  ];

  function toB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromB64url(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "===".slice((b64.length + 3) % 4);
    const raw = atob(padded);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function csrfOf(form) {
    const field = form.querySelector('input[name="csrf_token"]');
    if (field) return field.value;
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function say(form, text) {
    const status = form.querySelector(".sign-status, [data-testid='passkey-status']");
    if (status) status.textContent = text;
  }

  async function postJson(url, body, csrf) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const message = data && (data.error || data.message || data.detail);
      throw new Error(typeof message === "string" ? message : "refused (" + response.status + ")");
    }
    return data;
  }

  function fieldsOf(form) {
    const fields = {};
    const data = new FormData(form);
    for (const [name, value] of data.entries()) {
      if (SIGNATURE_FIELDS.includes(name) || typeof value !== "string") continue;
      if (name === "partners") {
        (fields[name] = fields[name] || []).push(value);
      } else {
        fields[name] = value;
      }
    }
    return fields;
  }

  function setField(form, name, value) {
    const field = form.querySelector('input[name="' + name + '"]');
    if (field) field.value = value;
  }

  async function signAndSubmit(form) {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(form, "This browser cannot use passkeys.");
      return;
    }
    const release = form.getAttribute("data-release");
    const action = form.querySelector('input[name="action"]').value;
    const seen = form.querySelector('input[name="seen"]').value;
    const choice = form.querySelector('select[name="passkey"]');
    const body = { action: action, fields: fieldsOf(form), seen: seen };
    if (choice && choice.value) body.key_id = choice.value; // else the server takes the newest
    say(form, "Preparing the statement…");
    const prepared = await postJson(
      "/releases/" + encodeURIComponent(release) + "/prepare",
      body,
      csrfOf(form),
    );
    say(form, "Touch your passkey to sign…");
    const assertion = await navigator.credentials.get({
      publicKey: {
        challenge: fromB64url(prepared.challenge),
        allowCredentials: prepared.allow_credentials.map(function (id) {
          return { type: "public-key", id: fromB64url(id) };
        }),
        userVerification: "required",
        rpId: prepared.rp_id,
        timeout: 120000,
      },
    });
    if (!assertion) throw new Error("the passkey gave no signature");
    const response = assertion.response;
    setField(form, "signed_at", prepared.signed_at);
    setField(form, "nonce", prepared.nonce);
    setField(form, "key_id", prepared.key_id);
    setField(form, "credential_id", toB64url(assertion.rawId));
    setField(form, "authenticator_data", toB64url(response.authenticatorData));
    setField(form, "client_data_json", toB64url(response.clientDataJSON));
    setField(form, "signature", toB64url(response.signature));
    say(form, "Signed; sending…");
    HTMLFormElement.prototype.submit.call(form);
  }

  function onDecisionSubmit(event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.getAttribute("data-sign") !== "passkey") return;
    if (event.submitter && event.submitter.name === "mode") return; // console-attested: no passkey
    event.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    signAndSubmit(form).catch(function (error) {
      say(form, "Not sent: " + (error && error.message ? error.message : String(error)));
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }

  async function registerPasskey(button) {
    const box = button.closest(".passkey-register") || document;
    const csrf = csrfOf(box);
    const labelField = box.querySelector('input[name="label"]');
    const label = labelField ? labelField.value : "";
    const status = document.querySelector("[data-testid='passkey-status']");
    const show = function (text) { if (status) status.textContent = text; };
    if (!window.PublicKeyCredential || !navigator.credentials) {
      show("This browser cannot use passkeys.");
      return;
    }
    show("Asking your authenticator…");
    const options = await postJson("/passkeys/options", {}, csrf);
    const publicKey = Object.assign({}, options, {
      challenge: fromB64url(options.challenge),
      user: Object.assign({}, options.user, { id: fromB64url(options.user.id) }),
      excludeCredentials: (options.excludeCredentials || []).map(function (c) {
        return Object.assign({}, c, { id: fromB64url(c.id) });
      }),
    });
    const credential = await navigator.credentials.create({ publicKey: publicKey });
    if (!credential) throw new Error("the authenticator made no passkey");
    const response = credential.response;
    const result = await postJson(
      "/passkeys",
      {
        label: label,
        credential: {
          id: credential.id,
          rawId: toB64url(credential.rawId),
          type: credential.type,
          response: {
            clientDataJSON: toB64url(response.clientDataJSON),
            attestationObject: toB64url(response.attestationObject),
            transports: response.getTransports ? response.getTransports() : [],
          },
          clientExtensionResults: credential.getClientExtensionResults(),
        },
      },
      csrf,
    );
    show(result.message);
    window.setTimeout(function () { window.location.reload(); }, 800);
  }

  function onClick(event) {
    const button = event.target.closest ? event.target.closest("[data-testid='passkey-register']") : null;
    if (!button) return;
    event.preventDefault();
    button.disabled = true;
    registerPasskey(button).catch(function (error) {
      const status = document.querySelector("[data-testid='passkey-status']");
      if (status) status.textContent = "Not registered: " + (error && error.message ? error.message : String(error));
      button.disabled = false;
    });
  }

  function span(seconds) {
    seconds = Math.floor(Math.abs(seconds));
    const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    if (m) return m + " min";
    return seconds + " s";
  }

  function tick() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      const at = Date.parse(el.getAttribute("data-countdown"));
      if (isNaN(at)) return;
      const left = (at - Date.now()) / 1000;
      el.textContent = left >= 0 ? "in " + span(left) : "passed " + span(left) + " ago";
    });
  }

  document.addEventListener("submit", onDecisionSubmit);
  document.addEventListener("click", onClick);
  window.setInterval(tick, 30000);
})();
