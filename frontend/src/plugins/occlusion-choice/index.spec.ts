import { clickTarget, pressKey, simulateTimeline, startTimeline } from "@jspsych/test-utils";

import OcclusionChoicePlugin from ".";

const REFERENCES = ["/media/img/aa/r1.png", "/media/img/aa/r2.png"];
const BASE = "/media/img/bb/base.png";
const QUERIES = ["/media/img/cc/o0.png", "/media/img/cc/o1.png"];

function trial(overrides: Record<string, unknown> = {}) {
  return {
    type: OcclusionChoicePlugin,
    references: REFERENCES,
    base: BASE,
    queries: QUERIES,
    question: "Which image does the network favour?",
    lockout_ms: 800,
    feedback_delay_ms: 200,
    feedback_duration_ms: 500,
    decode_image: async () => {},
    study_trial_index: 3,
    ...overrides,
  };
}

function button(display: HTMLElement, choice: number, confidence: number): HTMLButtonElement {
  return display.querySelector(`[data-choice="${choice}"][data-confidence="${confidence}"]`)!;
}

beforeEach(() => {
  vi.useFakeTimers({
    toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "performance", "Date"],
  });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("occlusion-choice", () => {
  test("it shows the references, the labelled base image and the two occluded copies", async () => {
    const { displayElement } = await startTimeline([trial()]);

    const refs = displayElement.querySelector(".pl-refs")!;
    expect(refs.querySelector("h2")!.textContent).toBe("Maximally activating");
    expect(refs.querySelectorAll("img")).toHaveLength(2);
    const base = displayElement.querySelector(".pl-base")!;
    expect(base.querySelector("h2")!.textContent).toBe("Original");
    expect(base.querySelector("img")!.getAttribute("src")).toBe(BASE);
    const queries = [...displayElement.querySelectorAll(".pl-query img")];
    expect(queries.map((img) => img.getAttribute("src"))).toEqual(QUERIES);
    expect(displayElement.querySelector(".pl-question")!.textContent).toBe(
      "Which image does the network favour?",
    );
    expect(displayElement.querySelectorAll("button.pl-btn")).toHaveLength(6);
  });

  test("it locks the buttons for lockout_ms", async () => {
    const { displayElement } = await startTimeline([trial()]);

    await vi.advanceTimersByTimeAsync(799);
    expect(button(displayElement, 1, 3).disabled).toBe(true);
    await vi.advanceTimersByTimeAsync(1);

    expect(button(displayElement, 1, 3).disabled).toBe(false);
  });

  test("a click records the answer and the verdict shown", async () => {
    const { displayElement, getData, expectFinished } = await startTimeline([
      trial({ on_response: async () => ({ correct: true }) }),
    ]);
    await vi.advanceTimersByTimeAsync(900);

    await clickTarget(button(displayElement, 1, 3));
    await vi.advanceTimersByTimeAsync(200);
    expect(displayElement.querySelector('.pl-query[data-query="1"]')!.className).toContain(
      "pl-correct",
    );
    await vi.advanceTimersByTimeAsync(500);

    await expectFinished();
    expect(getData().values()[0]).toMatchObject({
      trial_type: "occlusion-choice",
      choice: 1,
      confidence: 3,
      rt: 900,
      base: BASE,
      n_references: 2,
      study_trial_index: 3,
      correct: true,
      feedback_shown: true,
    });
  });

  test("a key press answers with the shared mapping", async () => {
    const { getData } = await startTimeline([trial()]);
    await vi.advanceTimersByTimeAsync(800);

    await pressKey("2");
    await vi.advanceTimersByTimeAsync(700);

    expect(getData().values()[0]).toMatchObject({ choice: 0, confidence: 2, rt: 800 });
  });

  test("it works without references", async () => {
    const { displayElement } = await startTimeline([trial({ references: [] })]);

    expect(displayElement.querySelector(".pl-refs")).toBeNull();
    expect(displayElement.querySelector(".pl-base img")).not.toBeNull();
  });
});

describe("occlusion-choice simulation", () => {
  test("data-only mode produces the documented data", async () => {
    const { getData, expectFinished } = await simulateTimeline([trial()]);

    await expectFinished();
    const data = getData().values()[0];
    expect([0, 1]).toContain(data.choice);
    expect([1, 2, 3]).toContain(data.confidence);
    expect(data).toMatchObject({ base: BASE, n_references: 2, study_trial_index: 3 });
  });

  test("visual mode clicks the simulated button after the lockout", async () => {
    const { getData, expectFinished } = await simulateTimeline(
      [trial({ simulation_options: { data: { choice: 1, confidence: 2, rt: 1000 } } })],
      "visual",
    );
    await vi.advanceTimersByTimeAsync(1000 + 700);

    await expectFinished();
    expect(getData().values()[0]).toMatchObject({ choice: 1, confidence: 2, rt: 1000 });
  });
});
