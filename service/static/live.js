// Live transcription: microphone -> AudioWorklet (16 kHz s16le) -> WebSocket /v1/stream, with reconnects.

import {
  KEY_NEEDED, apiKey, clearMessage, hotwordList, resultOptions, setStatus, showFinal, showMessage, showPartial, ui,
} from "./ui.js";

const TARGET_RATE = 16000; // what the model expects; the page sends it so the server never resamples
const MAX_PENDING_S = 20; // audio kept while (re)connecting (the server holds at most 30 s per stream)
const RECONNECT_DELAYS_S = [0.5, 1, 2, 4, 8];
const MAX_RETRIES_WHILE_STOPPING = 3; // after Stop nobody is waiting for more audio: give up sooner
const CLOSE_TRY_AGAIN_LATER = 1013;
// 1003 unsupported data, 1008 policy violation, 1009 too big: resending the same thing would fail the same way.
const FATAL_CLOSE_CODES = new Set([1003, 1008, 1009]);
// Server errors worth a reconnect; any other error code means the request itself was wrong.
const TRANSIENT_ERRORS = new Set(["busy", "internal"]);

function microphoneProblem(error) {
  const known = {
    NotAllowedError: "Microphone access was refused. Allow the microphone for this site (the icon in the address bar) and press Start again.",
    NotFoundError: "No microphone was found. Connect one and press Start again.",
    NotReadableError: "The microphone could not be opened; another application may be using it.",
    SecurityError: "The browser blocks the microphone on this page; open it over https:// or from localhost.",
  };
  return known[error.name] || `Could not open the microphone: ${error.message}`;
}

export class LiveTranscriber {
  constructor() {
    this.active = false;
  }

  async start() {
    clearMessage();
    if (!navigator.mediaDevices?.getUserMedia || !window.AudioWorkletNode) {
      showMessage("error", "This page needs a current browser and https:// (or localhost) to use the microphone.");
      return;
    }
    Object.assign(this, { stopping: false, flushed: false, session: 0, attempt: 0, pending: [], pendingBytes: 0, dropped: 0 });
    ui.micStart.disabled = true;
    setStatus("starting", "opening the microphone…");
    try {
      this.media = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (error) {
      this.cannotCapture(microphoneProblem(error));
      return;
    }
    try {
      await this.buildAudioGraph();
    } catch (error) {
      this.media.getTracks().forEach((track) => track.stop());
      this.cannotCapture(`Audio capture failed: ${error.message}`);
      return;
    }
    this.active = true;
    this.locale = ui.locale.value;
    this.fullContextFinals = ui.fullContextFinals.checked;
    this.hotwords = hotwordList();
    this.resultOptions = resultOptions();
    ui.locale.disabled = ui.apiKey.disabled = ui.fullContextFinals.disabled = ui.hotwords.disabled = true;
    ui.redact.disabled = ui.written.disabled = true;
    ui.micStop.disabled = false;
    this.connect();
  }

  cannotCapture(text) {
    showMessage("error", text);
    setStatus("error", "microphone unavailable");
    ui.micStart.disabled = false;
  }

  // A 16 kHz AudioContext lets the browser do the resampling; where it refuses to connect the microphone to
  // one (Firefox, when the device runs at another rate) the worklet resamples instead. `?resample=worklet`
  // forces that path.
  async buildAudioGraph() {
    let context = null;
    let source = null;
    if (new URLSearchParams(location.search).get("resample") !== "worklet") {
      try {
        context = new AudioContext({ sampleRate: TARGET_RATE });
        source = context.createMediaStreamSource(this.media);
      } catch {
        context?.close();
        context = null;
      }
    }
    if (!context) {
      context = new AudioContext();
      source = context.createMediaStreamSource(this.media);
    }
    await context.audioWorklet.addModule("/static/audio-worklet.js");
    const worklet = new AudioWorkletNode(context, "pcm-capture", {
      channelCount: 1, channelCountMode: "explicit", processorOptions: { targetRate: TARGET_RATE },
    });
    worklet.port.onmessage = (event) => this.onWorkletMessage(event.data);
    const mute = context.createGain(); // the graph only pulls nodes that lead to the destination
    mute.gain.value = 0;
    source.connect(worklet).connect(mute).connect(context.destination);
    await context.resume();
    Object.assign(this, { context, worklet });
  }

  onWorkletMessage(data) {
    if (data.type === "audio") this.sendAudio(data.buffer);
    if (data.type === "flushed" && this.stopping) {
      this.flushed = true;
      if (this.ready) this.sendRemainingAndStop();
    }
  }

  sendAudio(buffer) {
    if (this.ready) {
      this.ws.send(buffer);
      return;
    }
    this.pending.push(buffer);
    this.pendingBytes += buffer.byteLength;
    while (this.pendingBytes > MAX_PENDING_S * TARGET_RATE * 2) {
      this.pendingBytes -= this.pending.shift().byteLength;
      this.dropped += 1;
    }
  }

  sendRemainingAndStop() {
    for (const buffer of this.pending) this.ws.send(buffer);
    this.pending = [];
    this.pendingBytes = 0;
    this.ws.send(JSON.stringify({ type: "stop" }));
  }

  connect() {
    Object.assign(this, { ready: false, gotEnd: false, errorCode: null, errorMessage: "" });
    this.session += 1;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // Browsers cannot set headers on a WebSocket: the key travels as the subprotocol `apikey.<key>`, next to
    // `asr`, the one the server picks.
    const protocols = apiKey() ? ["asr", `apikey.${apiKey()}`] : [];
    const ws = new WebSocket(`${scheme}://${location.host}/v1/stream`, protocols);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    if (this.attempt === 0) setStatus("connecting", "connecting…");
    ws.onopen = () => ws.send(JSON.stringify({
      type: "start", locale: this.locale, sample_rate: TARGET_RATE, encoding: "pcm_s16le", interim_results: true,
      full_context_finals: this.fullContextFinals, hotwords: this.hotwords, ...this.resultOptions,
    }));
    ws.onmessage = (event) => ws === this.ws && this.onServerMessage(JSON.parse(event.data));
    ws.onclose = (event) => ws === this.ws && this.onClose(event);
  }

  onServerMessage(message) {
    const key = `${this.session}-${message.segment}`;
    if (message.type === "ready") this.onReady(message);
    else if (message.type === "partial") showPartial(key, message);
    else if (message.type === "final") showFinal(key, message);
    else if (message.type === "end") this.gotEnd = true;
    else if (message.type === "error") Object.assign(this, { errorCode: message.code, errorMessage: message.message });
  }

  onReady(message) {
    const recovered = this.attempt > 0;
    this.ready = true;
    this.attempt = 0;
    setStatus(this.stopping ? "finishing" : "listening",
      `${this.stopping ? "finishing" : "listening"} · ${message.locale} · ${this.context.sampleRate} Hz → 16 kHz`);
    if (recovered) {
      const lost = this.dropped ? ` ${(this.dropped * 0.1).toFixed(1)} s of audio could not be kept.` : "";
      showMessage("info", `Reconnected to the server; transcription continues.${lost}`);
    }
    this.dropped = 0;
    if (this.stopping && this.flushed) this.sendRemainingAndStop();
    else for (const buffer of this.pending.splice(0)) this.ws.send(buffer);
    this.pendingBytes = 0;
  }

  onClose(event) {
    this.ready = false;
    if (this.gotEnd && this.stopping) {
      if (ui.message.dataset.kind === "info") clearMessage(); // "reconnected" no longer describes anything
      this.teardown("idle", "stopped");
      return;
    }
    if (this.errorCode === "busy" || event.code === CLOSE_TRY_AGAIN_LATER) {
      this.retryLater("busy", `The server is busy (${this.errorMessage || "no free stream"}).`);
    } else if (this.errorCode === "unauthorized") {
      this.fail(KEY_NEEDED);
    } else if ((this.errorCode && !TRANSIENT_ERRORS.has(this.errorCode)) || FATAL_CLOSE_CODES.has(event.code)) {
      const why = this.errorMessage || event.reason || `close code ${event.code}`;
      this.fail(`The server ended the stream: ${why}${this.errorCode ? ` (${this.errorCode})` : ""}.`);
    } else {
      this.retryLater("reconnecting", "The connection to the server was lost.");
    }
  }

  retryLater(state, what) {
    if (!this.active) return;
    if (this.stopping && this.attempt >= MAX_RETRIES_WHILE_STOPPING) {
      this.fail(`${what} The last part of the recording was not transcribed.`);
      return;
    }
    const delay = RECONNECT_DELAYS_S[Math.min(this.attempt, RECONNECT_DELAYS_S.length - 1)];
    this.attempt += 1;
    showMessage("warning", `${what} Reconnecting in ${delay} s (attempt ${this.attempt}); the audio is kept meanwhile.`);
    setStatus(state, state === "busy" ? "server busy — waiting to retry" : "connection lost — reconnecting");
    this.reconnectTimer = setTimeout(() => this.connect(), delay * 1000);
  }

  stop() {
    if (!this.active || this.stopping) return;
    this.stopping = true;
    ui.micStop.disabled = true;
    setStatus("finishing", "finishing…");
    this.media.getTracks().forEach((track) => track.stop());
    this.worklet.port.postMessage("stop"); // answers "flushed" after posting its last samples
  }

  fail(text) {
    showMessage("error", text);
    this.teardown("error", "stopped");
  }

  teardown(state, text) {
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    this.ws = null; // late events of the old socket are ignored from here on
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
    this.media?.getTracks().forEach((track) => track.stop());
    this.context?.close();
    this.active = false;
    ui.micStart.disabled = false;
    ui.micStop.disabled = true;
    ui.locale.disabled = ui.apiKey.disabled = ui.fullContextFinals.disabled = ui.hotwords.disabled = false;
    ui.redact.disabled = ui.written.disabled = false;
    setStatus(state, text);
  }
}

