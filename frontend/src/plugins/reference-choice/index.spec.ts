import { clickTarget, pressKey, simulateTimeline, startTimeline } from "@jspsych/test-utils";

import { resetKeyboardUse } from "../choice-trial";
import ReferenceChoicePlugin from ".";

const LEFT = ["/media/img/aa/a1.png", "/media/img/aa/a2.png"];
const RIGHT = ["/media/img/bb/b1.png", "/media/img/bb/b2.png", "/media/img/bb/b3.png"];
const QUERIES = ["/media/img/cc/q0.png", "/media/img/cc/q1.png"];

function trial(overrides: Record<string, unknown> = {}) {
  return {
    type: ReferenceChoicePlugin,
    references_left: LEFT,
    references_right: RIGHT,
    queries: QUERIES,
    question: "Which image also strongly activates the unit?",
    lockout_ms: 1000,
    feedback_delay_ms: 300,
    feedback_duration_ms: 1000,
    decode_image: async () => {},
    study_trial_index: 7,
    ...overrides,
  };
}

function button(display: HTMLElement, choice: number, confidence: number): HTMLButtonElement {
  return display.querySelector(`[data-choice="${choice}"][data-confidence="${confidence}"]`)!;
}

function buttons(display: HTMLElement): HTMLButtonElement[] {
  return [...display.querySelectorAll<HTMLButtonElement>("button.pl-btn")];
}

beforeEach(() => {
  vi.useFakeTimers({
    toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "performance", "Date"],
  });
});

afterEach(() => {
  vi.useRealTimers();
  resetKeyboardUse();
  Reflect.deleteProperty(window.navigator, "maxTouchPoints");
});

/** A decoder where each listed image fails that many times before it decodes. */
function flakyDecoder(failures: Record<string, number>) {
  const left = new Map(Object.entries(failures));
  return vi.fn(async (img: HTMLImageElement) => {
    const src = img.getAttribute("src") ?? "";
    const n = left.get(src) ?? 0;
    if (n > 0) {
      left.set(src, n - 1);
      throw new Error("net::ERR_INTERNET_DISCONNECTED");
    }
  });
}

function waitingText(display: HTMLElement): string | null {
  const waiting = display.querySelector<HTMLElement>(".pl-waiting")!;
  return waiting.hidden ? null : waiting.textContent;
}

describe("reference-choice", () => {
  test("it shows both labelled grids, the question and the two queries with 2 × 3 buttons", async () => {
    const { displayElement } = await startTimeline([trial()]);

    const left = displayElement.querySelector(".pl-refs-left")!;
    const right = displayElement.querySelector(".pl-refs-right")!;
    expect(left.querySelector("h2")!.textContent).toBe("Minimally activating");
    expect(right.querySelector("h2")!.textContent).toBe("Maximally activating");
    expect([...left.querySelectorAll("img")].map((img) => img.getAttribute("src"))).toEqual(LEFT);
    expect(right.querySelectorAll("img")).toHaveLength(3);
    const queries = [...displayElement.querySelectorAll(".pl-query img")];
    expect(queries.map((img) => img.getAttribute("src"))).toEqual(QUERIES);
    expect(displayElement.querySelector(".pl-question")!.textContent).toContain("strongly");
    expect(buttons(displayElement)).toHaveLength(6);
  });

  test("it leaves out an empty grid (max-only design, none condition)", async () => {
    const { displayElement } = await startTimeline([
      trial({ references_left: [], references_right: [] }),
    ]);

    expect(displayElement.querySelector(".pl-refs")).toBeNull();
    expect(displayElement.querySelectorAll(".pl-query")).toHaveLength(2);
  });

  test("it sets the images' CSS size from image_size_px", async () => {
    const { displayElement } = await startTimeline([trial({ image_size_px: 128 })]);

    const root = displayElement.querySelector<HTMLElement>(".pl-trial")!;
    expect(root.style.getPropertyValue("--pl-img")).toBe("128px");
  });

  test("it keeps the buttons and keys locked until lockout_ms has passed", async () => {
    const { displayElement, expectRunning } = await startTimeline([trial()]);

    expect(buttons(displayElement).every((b) => b.disabled)).toBe(true);
    await clickTarget(button(displayElement, 0, 3));
    await pressKey("1");
    await vi.advanceTimersByTimeAsync(999);
    expect(buttons(displayElement).every((b) => b.disabled)).toBe(true);
    await vi.advanceTimersByTimeAsync(1);

    expect(buttons(displayElement).every((b) => !b.disabled)).toBe(true);
    expect(displayElement.querySelector(".pl-chosen")).toBeNull();
    await expectRunning();
  });

  test("a key press records the documented choice and confidence", async () => {
    const { getData, expectFinished } = await startTimeline([trial()]);
    await vi.advanceTimersByTimeAsync(1200);

    await pressKey("9");
    await vi.advanceTimersByTimeAsync(1300);

    await expectFinished();
    const data = getData().values()[0];
    expect(data).toMatchObject({
      trial_type: "reference-choice",
      choice: 1,
      confidence: 2,
      rt: 1200,
      response_device: "keyboard",
      study_trial_index: 7,
      practice: false,
      queries: QUERIES,
      n_references_left: 2,
      n_references_right: 3,
    });
    expect(Date.parse(data.client_answered_at) - Date.parse(data.client_started_at)).toBe(1200);
  });

  test.each([
    ["1", 0, 1],
    ["2", 0, 2],
    ["3", 0, 3],
    ["8", 1, 1],
    ["9", 1, 2],
    ["0", 1, 3],
  ])("key %s means choice %i with confidence %i", async (key, choice, confidence) => {
    const { getData } = await startTimeline([trial()]);
    await vi.advanceTimersByTimeAsync(1000);

    await pressKey(key);
    await vi.advanceTimersByTimeAsync(1300);

    expect(getData().values()[0]).toMatchObject({ choice, confidence });
  });

  test("a click records choice, confidence and rt, and ignores a second answer", async () => {
    const onResponse = vi.fn(async () => null);
    const { displayElement, getData, expectFinished } = await startTimeline([
      trial({ on_response: onResponse }),
    ]);
    await vi.advanceTimersByTimeAsync(1500);

    await clickTarget(button(displayElement, 0, 2));
    await pressKey("0");
    expect(button(displayElement, 0, 2).classList.contains("pl-chosen")).toBe(true);
    await vi.advanceTimersByTimeAsync(1300);

    await expectFinished();
    expect(getData().values()[0]).toMatchObject({
      choice: 0,
      confidence: 2,
      rt: 1500,
      response_device: "mouse",
    });
    expect(onResponse).toHaveBeenCalledTimes(1);
    expect(onResponse).toHaveBeenCalledWith(0, 2, 1500, expect.objectContaining({ choice: 0 }));
  });

  test("it shows the server's verdict when on_response resolves in time", async () => {
    const { displayElement, getData } = await startTimeline([
      trial({
        on_response: async () => ({ correct: false, correct_count: 4 }),
        counter: 4,
      }),
    ]);
    await vi.advanceTimersByTimeAsync(1000);
    await clickTarget(button(displayElement, 1, 3));

    await vi.advanceTimersByTimeAsync(299);
    expect(displayElement.querySelector(".pl-feedback")!.textContent).toBe("");
    await vi.advanceTimersByTimeAsync(1);
    expect(displayElement.querySelector(".pl-feedback")!.textContent).toBe("Wrong.");
    expect(displayElement.querySelector('.pl-query[data-query="1"]')!.className).toContain(
      "pl-wrong",
    );
    await vi.advanceTimersByTimeAsync(1000);

    expect(getData().values()[0]).toMatchObject({ correct: false, feedback_shown: true });
  });

  test("it updates the running counter on a correct answer", async () => {
    const { displayElement } = await startTimeline([
      trial({ on_response: async () => ({ correct: true }), counter: 9 }),
    ]);
    expect(displayElement.querySelector(".pl-counter")!.textContent).toContain("9");
    await vi.advanceTimersByTimeAsync(1000);

    await pressKey("3");
    await vi.advanceTimersByTimeAsync(300);

    expect(displayElement.querySelector(".pl-feedback")!.textContent).toBe("Correct!");
    expect(displayElement.querySelector(".pl-counter strong")!.textContent).toBe("10");
  });

  test("it shows no feedback, and does not wait, when the verdict is late", async () => {
    const late = new Promise<{ correct: boolean }>(() => {});
    const { displayElement, getData, expectFinished } = await startTimeline([
      trial({ on_response: () => late }),
    ]);
    await vi.advanceTimersByTimeAsync(1000);

    await pressKey("1");
    await vi.advanceTimersByTimeAsync(300);
    expect(displayElement.querySelector(".pl-feedback")!.textContent).toBe("");
    await vi.advanceTimersByTimeAsync(1000);

    await expectFinished();
    expect(getData().values()[0]).toMatchObject({ correct: null, feedback_shown: false });
  });

  test("it ends after feedback_delay_ms when feedback is off, whatever on_response says", async () => {
    const { displayElement, expectFinished } = await startTimeline([
      trial({ show_feedback: false, on_response: async () => ({ correct: true }) }),
    ]);
    await vi.advanceTimersByTimeAsync(1000);

    await pressKey("1");
    expect(displayElement.querySelector(".pl-feedback")!.textContent).toBe("");
    await vi.advanceTimersByTimeAsync(300);

    await expectFinished();
  });

  test("it survives an on_response that throws", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const { expectFinished } = await startTimeline([
      trial({
        on_response: () => {
          throw new Error("offline");
        },
      }),
    ]);
    await vi.advanceTimersByTimeAsync(1000);

    await pressKey("8");
    await vi.advanceTimersByTimeAsync(1300);

    await expectFinished();
    expect(warn).toHaveBeenCalled();
  });

  test("it keeps the trial hidden and locked until every image is decoded, fetching failed ones again", async () => {
    const decode = flakyDecoder({ [QUERIES[0]]: 2 });
    const { displayElement, getData, expectRunning } = await startTimeline([
      trial({ decode_image: decode, image_retry_ms: 1000 }),
    ]);
    const trialRoot = displayElement.querySelector(".pl-trial")!;
    expect(trialRoot.classList.contains("pl-loading")).toBe(true);
    expect(waitingText(displayElement)).toContain("Waiting for the connection: 6 of 7 images");

    await vi.advanceTimersByTimeAsync(1000); // the first retry fails too; the next waits 2 s
    await pressKey("1");
    await clickTarget(button(displayElement, 0, 1));
    expect(trialRoot.classList.contains("pl-loading")).toBe(true);
    expect(buttons(displayElement).every((b) => b.disabled)).toBe(true);
    await vi.advanceTimersByTimeAsync(2000);
    expect(trialRoot.classList.contains("pl-loading")).toBe(false);
    expect(waitingText(displayElement)).toBeNull();
    await expectRunning();

    await vi.advanceTimersByTimeAsync(1000);
    await pressKey("2");
    await vi.advanceTimersByTimeAsync(1300);

    expect(decode).toHaveBeenCalledTimes(7 + 2);
    expect(getData().values()[0]).toMatchObject({
      choice: 0,
      rt: 1000,
      load_ms: 3000,
      images: 7,
      image_retries: 2,
      images_loaded: true,
    });
  });

  test("a trial whose images never load never appears, and retries at once when back online", async () => {
    const decode = flakyDecoder({ [RIGHT[1]]: 1000 });
    const onResponse = vi.fn(async () => null);
    const { displayElement, expectRunning } = await startTimeline([
      trial({ decode_image: decode, on_response: onResponse }),
    ]);
    for (let second = 0; second < 120; second += 10) {
      await vi.advanceTimersByTimeAsync(10_000);
      await pressKey("3");
    }
    expect(displayElement.querySelector(".pl-trial")!.classList.contains("pl-loading")).toBe(true);
    expect(waitingText(displayElement)).toContain("6 of 7 images");
    expect(onResponse).not.toHaveBeenCalled();
    await expectRunning();

    const tries = decode.mock.calls.length;
    window.dispatchEvent(new Event("online"));
    await vi.advanceTimersByTimeAsync(0);
    expect(decode.mock.calls.length).toBe(tries + 1);
  });

  test("it says it waits for the connection only once loading is slow", async () => {
    let arrive: () => void = () => {};
    const slow = new Promise<void>((resolve) => (arrive = resolve));
    const { displayElement } = await startTimeline([
      trial({ decode_image: () => slow, waiting_message_ms: 1000 }),
    ]);
    await vi.advanceTimersByTimeAsync(999);
    expect(waitingText(displayElement)).toBeNull();
    await vi.advanceTimersByTimeAsync(1);
    expect(waitingText(displayElement)).toContain("0 of 7 images");

    arrive();
    await vi.advanceTimersByTimeAsync(0);
    expect(waitingText(displayElement)).toBeNull();
    expect(displayElement.querySelector(".pl-trial")!.classList.contains("pl-loading")).toBe(false);
  });

  test("it reports the verdict it showed, and nothing when it showed none", async () => {
    const shown = vi.fn();
    const { displayElement } = await startTimeline([
      trial({ on_response: async () => ({ correct: false }), on_feedback_shown: shown }),
    ]);
    await vi.advanceTimersByTimeAsync(1000);
    await clickTarget(button(displayElement, 1, 3));
    await vi.advanceTimersByTimeAsync(300);
    expect(shown).toHaveBeenCalledWith(false);

    const never = vi.fn();
    await startTimeline([
      trial({ on_response: () => new Promise(() => {}), on_feedback_shown: never }),
    ]);
    await vi.advanceTimersByTimeAsync(1000);
    await pressKey("1");
    await vi.advanceTimersByTimeAsync(1300);
    expect(never).not.toHaveBeenCalled();
  });

  test("it shows its label, e.g. that it is a practice trial", async () => {
    const { displayElement } = await startTimeline([
      trial({ practice: true, label: "Practice trial 2 of 5" }),
    ]);

    expect(displayElement.querySelector(".pl-label")!.textContent).toBe("Practice trial 2 of 5");
  });

  test("a touch screen hides the key hints until a key is used", async () => {
    Object.defineProperty(window.navigator, "maxTouchPoints", { value: 5, configurable: true });
    const { displayElement } = await startTimeline([trial()]);
    const trialRoot = displayElement.querySelector(".pl-trial")!;
    expect(trialRoot.classList.contains("pl-no-keys")).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);

    await pressKey("9");
    expect(trialRoot.classList.contains("pl-no-keys")).toBe(false);
  });

  test("a mouse-and-keyboard screen shows the key hints", async () => {
    const { displayElement } = await startTimeline([trial()]);

    expect(displayElement.querySelector(".pl-trial")!.classList.contains("pl-no-keys")).toBe(false);
    expect(displayElement.querySelector(".pl-key")!.textContent).toBe("1");
  });
});

describe("reference-choice simulation", () => {
  test("data-only mode produces the documented data and calls on_response", async () => {
    const onResponse = vi.fn(async () => ({ correct: true }));
    const { getData, expectFinished } = await simulateTimeline([
      trial({ on_response: onResponse }),
    ]);

    await expectFinished();
    const data = getData().values()[0];
    expect([0, 1]).toContain(data.choice);
    expect([1, 2, 3]).toContain(data.confidence);
    expect(data.rt).toBeGreaterThan(1000);
    expect(data).toMatchObject({ study_trial_index: 7, n_references_left: 2 });
    expect(onResponse).toHaveBeenCalledTimes(1);
  });

  test("data-only mode takes the simulated answer from simulation_options", async () => {
    const { getData } = await simulateTimeline([
      trial({ simulation_options: { data: { choice: 1, confidence: 3, rt: 2222 } } }),
    ]);

    expect(getData().values()[0]).toMatchObject({ choice: 1, confidence: 3, rt: 2222 });
  });

  test("visual mode runs the real trial and clicks after the lockout", async () => {
    const onResponse = vi.fn(async () => null);
    const { displayElement, getData, expectRunning, expectFinished } = await simulateTimeline(
      [
        trial({
          on_response: onResponse,
          simulation_options: { data: { choice: 0, confidence: 1, rt: 1800 } },
        }),
      ],
      "visual",
    );
    expect(displayElement.querySelectorAll("button.pl-btn")).toHaveLength(6);
    await vi.advanceTimersByTimeAsync(1700);
    await expectRunning();
    await vi.advanceTimersByTimeAsync(100);
    expect(onResponse).toHaveBeenCalledWith(0, 1, 1800, expect.anything());
    await vi.advanceTimersByTimeAsync(1300);

    await expectFinished();
    expect(getData().values()[0]).toMatchObject({ choice: 0, confidence: 1, rt: 1800 });
  });
});
