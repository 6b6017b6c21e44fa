import type { Trial } from "./api";
import { ImagePreloader, trialImages } from "./preload";

function trial(i: number): Trial {
  return {
    index: i,
    kind: "reference_choice",
    block: 0,
    references: { left: [`l${i}`], right: [`r${i}a`, `r${i}b`] },
    queries: [`q${i}a`, `q${i}b`],
  };
}

describe("ImagePreloader", () => {
  test("it loads the current trial and the next `ahead` ones, nothing further", async () => {
    const loaded: string[] = [];
    const preloader = new ImagePreloader([0, 1, 2, 3].map(trial), 1, async (url) => {
      loaded.push(url);
    });

    preloader.advanceTo(0);
    await vi.waitFor(() => expect(loaded).toHaveLength(10));

    expect(loaded).toEqual([...trialImages(trial(0)), ...trialImages(trial(1))]);
  });

  test("it says how many images are still queued or loading, down to none", async () => {
    const release: Array<() => void> = [];
    const told: number[] = [];
    const preloader = new ImagePreloader(
      [0, 1].map(trial),
      1,
      () => new Promise<void>((resolve) => release.push(resolve)),
      2,
      (pending) => told.push(pending),
    );

    preloader.advanceTo(0);
    expect(preloader.pending).toBe(10);
    expect(told).toEqual([10]);
    for (let i = 0; i < 10; i++) {
      await vi.waitFor(() => expect(release.length).toBeGreaterThan(0));
      release.shift()!();
    }
    await vi.waitFor(() => expect(preloader.pending).toBe(0));
    expect(told.at(-1)).toBe(0);
    expect(told).toEqual([...told].sort((a, b) => b - a)); // only ever down, once advanced
  });

  test("it never has more than `concurrency` images loading at once, nor loads one twice", async () => {
    let active = 0;
    let peak = 0;
    const seen: string[] = [];
    const preloader = new ImagePreloader(
      [0, 1, 2].map(trial),
      2,
      async (url) => {
        seen.push(url);
        active += 1;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 1));
        active -= 1;
      },
      3,
    );

    preloader.advanceTo(0);
    preloader.advanceTo(1);
    await vi.waitFor(() => expect(seen).toHaveLength(15));

    expect(peak).toBe(3);
    expect(new Set(seen).size).toBe(15);
  });

  test("a failed image does not stop the queue", async () => {
    const loaded: string[] = [];
    const preloader = new ImagePreloader(
      [trial(0)],
      0,
      async (url) => {
        if (url === "l0") throw new Error("404");
        loaded.push(url);
      },
      1,
    );

    preloader.advanceTo(0);

    await vi.waitFor(() => expect(loaded).toHaveLength(4));
  });

  test("it includes the occlusion base image", () => {
    expect(trialImages({ ...trial(0), base: "base" })).toContain("base");
  });
});
