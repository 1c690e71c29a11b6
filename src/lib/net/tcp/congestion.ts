/**
 * Congestion control: how the congestion window grows on acknowledgments and shrinks on loss.
 * The connection owns loss detection and recovery (RFC 6675 with SACK, RFC 6582 without) and
 * calls a controller at the events below; windows are in bytes.
 *
 * - NewReno: slow start and congestion avoidance of RFC 5681 §3.1 (byte counting, RFC 3465),
 *   halving on loss.
 * - CUBIC (RFC 9438, the default): the window follows a cubic function of the time since the
 *   last reduction, with a Reno-friendly floor (§4.3), fast convergence (§4.7) and β = 0.7.
 *
 * The initial window is RFC 6928's ten segments by default (what Linux uses).
 */

export type CongestionAlgorithm = "cubic" | "newreno";

export interface CongestionController {
  readonly algorithm: CongestionAlgorithm;
  /** Congestion window, bytes. */
  readonly cwnd: number;
  /** Slow-start threshold, bytes (Infinity until the first loss, RFC 5681 §3.1). */
  readonly ssthresh: number;
  /**
   * `acked` bytes newly acknowledged outside loss recovery. `cwndLimited` says whether the sender
   * used the window it had; when it did not, the window does not grow (RFC 7661 §4.3, RFC 9438 §5.8).
   */
  onAck(acked: number, nowMs: number, srttMs: number, cwndLimited: boolean): void;
  /** Loss detected by duplicate ACKs or SACK: entering fast recovery (RFC 5681 §3.2 step 2, RFC 9438 §4.6). */
  onLoss(nowMs: number, flightSize: number): void;
  /** Fast recovery ended (all data outstanding at its start acknowledged). */
  onRecoveryEnd(nowMs: number): void;
  /** The retransmission timer expired (RFC 5681 §3.1 eq. 4 and the loss window; RFC 9438 §4.8). */
  onRetransmitTimeout(nowMs: number, flightSize: number): void;
  /** RFC 5681 §4.1: after an idle period longer than the RTO, restart from the initial window. */
  onIdleRestart(nowMs: number): void;
  /** The sender's MSS changed (path MTU discovery): windows counted in segments keep their meaning. */
  setMss(mss: number): void;
  /** NewReno's fast recovery (RFC 6582 §3.2) inflates and deflates the window directly. */
  setCwnd(bytes: number): void;
}

/** RFC 6928 §2: min(10*MSS, max(2*MSS, 14600)). */
export function initialWindow(mss: number, segments = 10): number {
  if (segments === 10) return Math.min(10 * mss, Math.max(2 * mss, 14600));
  return Math.max(1, segments) * mss;
}

/** RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS). */
function halve(flightSize: number, mss: number): number {
  return Math.max(flightSize / 2, 2 * mss);
}

export class NewReno implements CongestionController {
  readonly algorithm = "newreno";
  cwnd: number;
  ssthresh = Infinity;
  /** RFC 3465 §2.1: bytes acknowledged in congestion avoidance since the window last grew. */
  private bytesAcked = 0;

  constructor(
    private mss: number,
    private readonly initialSegments = 10,
  ) {
    this.cwnd = initialWindow(mss, initialSegments);
  }

  onAck(acked: number, _nowMs: number, _srttMs: number, cwndLimited: boolean): void {
    if (!cwndLimited) return;
    if (this.cwnd < this.ssthresh) {
      // RFC 5681 §3.1 eq. 2: slow start grows by at most one SMSS per ACK.
      this.cwnd += Math.min(acked, this.mss);
      return;
    }
    // Congestion avoidance by byte counting: one SMSS per window's worth of acknowledged bytes.
    this.bytesAcked += acked;
    if (this.bytesAcked >= this.cwnd) {
      this.bytesAcked -= this.cwnd;
      this.cwnd += this.mss;
    }
  }

  onLoss(_nowMs: number, flightSize: number): void {
    this.ssthresh = halve(flightSize, this.mss);
    this.cwnd = this.ssthresh;
    this.bytesAcked = 0;
  }

  onRecoveryEnd(): void {
    this.cwnd = Math.max(this.ssthresh, 2 * this.mss);
  }

  onRetransmitTimeout(_nowMs: number, flightSize: number): void {
    this.ssthresh = halve(flightSize, this.mss);
    this.cwnd = this.mss;
    this.bytesAcked = 0;
  }

  onIdleRestart(): void {
    this.cwnd = Math.min(this.cwnd, initialWindow(this.mss, this.initialSegments));
  }

  setMss(mss: number): void {
    this.cwnd = Math.max(mss, (this.cwnd / this.mss) * mss);
    if (Number.isFinite(this.ssthresh)) this.ssthresh = Math.max(2 * mss, (this.ssthresh / this.mss) * mss);
    this.mss = mss;
  }

  setCwnd(bytes: number): void {
    this.cwnd = Math.max(this.mss, bytes);
  }
}

/** RFC 9438 §5.1: C = 0.4, β_cubic = 0.7. */
const CUBIC_C = 0.4;
const CUBIC_BETA = 0.7;
/** RFC 9438 §4.3: α_cubic = 3 (1 − β) / (1 + β), the Reno-friendly additive increase. */
const CUBIC_ALPHA = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);

/**
 * CUBIC (RFC 9438). Internally in segments (floating point), as the RFC writes it: W_cubic(t) =
 * C (t − K)^3 + W_max, with t in seconds since the congestion avoidance epoch began.
 */
export class Cubic implements CongestionController {
  readonly algorithm = "cubic";
  /** Segments. */
  private window: number;
  private threshold = Infinity;
  /** W_max: the window just before the last reduction; -1 after a timeout (§4.8: set at the next epoch). */
  private wMax = -1;
  /** K: seconds the cubic function takes to climb back to W_max. */
  private k = 0;
  /** Start of the current congestion avoidance epoch (ms), or -1 before it starts. */
  private epochStart = -1;
  /** W_est: the Reno-friendly estimate (§4.3). */
  private wEst = 0;
  /** cwnd_prior: the window before the last reduction (§4.3 switches α to 1 above it). */
  private cwndPrior = 0;

  constructor(
    private mss: number,
    private readonly initialSegments = 10,
  ) {
    this.window = initialWindow(mss, initialSegments) / mss;
  }

  get cwnd(): number {
    return Math.floor(this.window * this.mss);
  }

  get ssthresh(): number {
    return Number.isFinite(this.threshold) ? Math.floor(this.threshold * this.mss) : Infinity;
  }

  onAck(acked: number, nowMs: number, srttMs: number, cwndLimited: boolean): void {
    if (!cwndLimited) {
      // §5.8: an application-limited flow does not grow its window; the epoch restarts later.
      this.epochStart = -1;
      return;
    }
    const segments = acked / this.mss;
    if (this.window < this.threshold) {
      this.window += Math.min(segments, 1);
      return;
    }
    if (this.epochStart < 0) this.startEpoch(nowMs);
    const t = (nowMs - this.epochStart) / 1000;
    const rtt = srttMs / 1000;
    // §4.2: the target is W_cubic one RTT ahead, clamped to [cwnd, 1.5 cwnd].
    let target = this.cubic(t + rtt);
    if (target < this.window) target = this.window;
    else if (target > 1.5 * this.window) target = 1.5 * this.window;
    // §4.3: the Reno-friendly estimate grows by α per window of acknowledged segments.
    const alpha = this.wEst >= this.cwndPrior ? 1 : CUBIC_ALPHA;
    this.wEst += (alpha * segments) / this.window;
    if (this.cubic(t) < this.wEst) this.window = Math.max(this.window, this.wEst);
    else this.window += ((target - this.window) / this.window) * segments;
  }

  onLoss(): void {
    this.reduce();
    this.window = this.threshold;
  }

  onRecoveryEnd(): void {
    this.window = Math.max(this.threshold, 2);
  }

  onRetransmitTimeout(): void {
    // §4.8: ssthresh as for a loss; the window collapses to one segment (RFC 5681); the next
    // epoch starts with K = 0 and W_max at the window it starts with.
    this.reduce();
    this.wMax = -1;
    this.window = 1;
  }

  onIdleRestart(): void {
    this.window = Math.min(this.window, initialWindow(this.mss, this.initialSegments) / this.mss);
    this.epochStart = -1;
  }

  setMss(mss: number): void {
    // Counted in segments, the windows keep their meaning; only the byte views change.
    this.mss = mss;
  }

  setCwnd(bytes: number): void {
    this.window = Math.max(1, bytes / this.mss);
  }

  /** §4.6 and §4.7: the multiplicative decrease, with fast convergence. */
  private reduce(): void {
    const window = this.window;
    this.wMax = this.wMax >= 0 && window < this.wMax ? (window * (1 + CUBIC_BETA)) / 2 : window;
    this.cwndPrior = window;
    this.threshold = Math.max(window * CUBIC_BETA, 2);
    this.epochStart = -1;
  }

  private startEpoch(nowMs: number): void {
    this.epochStart = nowMs;
    if (this.wMax < 0 || this.window >= this.wMax) {
      this.wMax = this.window;
      this.k = 0;
    } else {
      this.k = Math.cbrt((this.wMax - this.window) / CUBIC_C);
    }
    this.wEst = this.window;
    if (this.cwndPrior === 0) this.cwndPrior = this.window;
  }

  private cubic(t: number): number {
    const d = t - this.k;
    return CUBIC_C * d * d * d + this.wMax;
  }
}

export function createCongestionController(algorithm: CongestionAlgorithm, mss: number, initialSegments = 10): CongestionController {
  return algorithm === "newreno" ? new NewReno(mss, initialSegments) : new Cubic(mss, initialSegments);
}
