/**
 * Image preloading a few trials ahead of the participant, a few images at a time, so a slow
 * connection fetches what is needed next first and never stalls on one big preload of the
 * whole study.
 */
import type { Trial } from "./api";

export type ImageLoader = (url: string) => Promise<void>;

/** Every image URL a trial shows. */
export function trialImages(trial: Trial): string[] {
  const urls = [...trial.references.left, ...trial.references.right];
  if (trial.base) urls.push(trial.base);
  urls.push(...trial.queries);
  return urls;
}

/** Loads through an Image element, so the browser cache serves the trial's <img> later. */
export function browserImageLoader(): ImageLoader {
  const held = new Set<HTMLImageElement>();
  return (url) =>
    new Promise((resolve) => {
      const img = new Image();
      held.add(img);
      const done = () => {
        held.delete(img);
        resolve();
      };
      img.onload = done;
      img.onerror = done; // A broken image must not stop the queue; the trial shows what it can.
      img.src = url;
    });
}

export class ImagePreloader {
  private readonly requested = new Set<string>();
  private readonly waiting: string[] = [];
  private active = 0;

  /**
   * @param trials the trials in the order they will run
   * @param ahead how many trials ahead of the current one to load (the study's preload_ahead)
   * @param concurrency how many images load at once
   * @param onPending told how many images are queued or loading whenever that changes
   */
  constructor(
    private readonly trials: Trial[],
    private readonly ahead: number,
    private readonly load: ImageLoader = browserImageLoader(),
    private readonly concurrency = 4,
    private readonly onPending?: (pending: number) => void,
  ) {}

  /** How many images are queued or loading. */
  get pending(): number {
    return this.waiting.length + this.active;
  }

  /** The participant is at `position` (0-based in `trials`): queue it and the next `ahead`. */
  advanceTo(position: number): void {
    const end = Math.min(this.trials.length, position + 1 + Math.max(0, this.ahead));
    for (let i = Math.max(0, position); i < end; i++) {
      for (const url of trialImages(this.trials[i])) {
        if (!this.requested.has(url)) {
          this.requested.add(url);
          this.waiting.push(url);
        }
      }
    }
    this.pump();
    this.onPending?.(this.pending);
  }

  private pump(): void {
    while (this.active < this.concurrency && this.waiting.length > 0) {
      const url = this.waiting.shift()!;
      this.active += 1;
      void this.load(url)
        .catch(() => undefined)
        .then(() => {
          this.active -= 1;
          this.pump();
          this.onPending?.(this.pending);
        });
    }
  }
}
