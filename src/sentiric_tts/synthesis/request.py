"""What every door turns a client's call into, and the validated plan made from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sentiric_tts.engines.base import GenerationParams, Voice
from sentiric_tts.voices.access import OPEN_ACCESS, LibraryAccess


@dataclass(frozen=True)
class SynthesisRequest:
    """A door-independent synthesis request; `None` means "the service default"."""

    text: str
    language: str | None = None
    voice: str | None = None
    params: GenerationParams = field(default_factory=GenerationParams)
    output_format: str = "wav"
    sample_rate: int | None = None
    references: tuple[tuple[str, bytes], ...] = ()
    """Reference clips (file name, bytes) to clone the voice from; overrides `voice`."""
    ssml: bool | None = None
    """True: `text` is SSML; False: plain text; None: SSML when it starts with `<speak`."""
    volume_gain_db: float = 0.0
    """Gain on top of loudness normalisation."""
    detect_language: bool = False
    """With no `language` (and no SSML xml:lang): guess it from the text before the default."""
    opens_speech: bool = True
    """Whether a listener waits for this request's first audio (not so for a WebSocket sentence
    whose listener still has earlier sentences to play): then its opening sentence may be cut
    after its first clause (`first_segment_chars`), trading a little prosody for a sooner start."""
    library_access: LibraryAccess = OPEN_ACCESS
    """Which library voices the caller may speak with. The Runtime sets it from the caller's
    identity for every door; the default serves the service's own callers (CLI, tests)."""


@dataclass(frozen=True)
class Prosody:
    """How a piece of text is spoken, beyond the request's own speed (SSML prosody, emphasis)."""

    rate: float = 1.0
    """Multiplies the request's speed."""
    pitch_semitones: float = 0.0
    """Pitch shift applied by DSP after synthesis (duration is kept)."""
    volume_db: float = 0.0
    """Gain applied after synthesis."""

    def compose(self, inner: Prosody) -> Prosody:
        """The prosody of an element nested inside this one: rates multiply, shifts and gains add."""
        return Prosody(
            rate=self.rate * inner.rate,
            pitch_semitones=self.pitch_semitones + inner.pitch_semitones,
            volume_db=self.volume_db + inner.volume_db,
        )


@dataclass(frozen=True)
class Segment:
    """One piece of text the engine renders in a single call."""

    text: str
    language: str
    voice: Voice
    params: GenerationParams
    prosody: Prosody = field(default_factory=Prosody)
    pause_before_s: float | None = None
    """Silence before this segment; None: the sentence pause (set for cuts inside a sentence)."""


@dataclass(frozen=True)
class Pause:
    """Silence between segments (an SSML break, or a sentence/paragraph pause)."""

    seconds: float


@dataclass(frozen=True)
class Mark:
    """A named point in the audio (SSML <mark>), reported by doors that carry events."""

    name: str


PlanItem = Segment | Pause | Mark


@dataclass(frozen=True)
class SynthesisPlan:
    """A validated request: everything needed to render it, nothing left to check."""

    items: tuple[PlanItem, ...]
    language: str
    voice_id: str
    output_format: str
    sample_rate: int
    engine_rate: int
    characters: int
    volume_gain_db: float = 0.0
    ignored_tags: tuple[str, ...] = ()
    speech_seconds: float = 0.0
    """Estimated speech (render.expected_speech_seconds over the segments)."""
    pause_seconds: float = 0.0
    """The silence the stream puts in: breaks, sentence and clause pauses."""
    max_audio_seconds: float | None = None
    """The most audio the request may make; rendering stops it there (None: no limit)."""

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(item for item in self.items if isinstance(item, Segment))
