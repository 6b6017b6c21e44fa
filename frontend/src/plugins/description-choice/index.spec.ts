import { clickTarget, pressKey, simulateTimeline, startTimeline } from "@jspsych/test-utils";

import DescriptionChoicePlugin from ".";

const LEFT = ["/media/img/aa/a1.png", "/media/img/aa/a2.png"];
const RIGHT = ["/media/img/bb/b1.png", "/media/img/bb/b2.png", "/media/img/bb/b3.png"];
const QUERIES = ["/media/img/cc/q0.png", "/media/img/cc/q1.png"];

function trial(overrides: Record<string, unknown> = {}) {
  return {
    type: DescriptionChoicePlugin,
    description: "goldfish",
    queries: QUERIES,
    question: "Which image at the centre strongly activates the unit?",
    lockout_ms: 1000,
    feedback_delay_ms: 300,
    feedback_duration_ms: 1000,
    decode_image: async () => {},
    study_trial_index: 4,
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

describe("description-choice", () => {
  test("it shows the labelled description and the two queries, and no grid without references", async () => {
    const { displayElement } = await startTimeline([trial()]);

    const panel = displayElement.querySelector(".pl-description")!;
    expect(panel.querySelector("h2")!.textContent).toBe("The unit responds strongly to");
    expect(panel.querySelector(".pl-description-text")!.textContent).toBe("goldfish");
    expect(displayElement.querySelector(".pl-refs")).toBeNull();
    const queries = [...displayElement.querySelectorAll(".pl-query img")];
    expect(queries.map((img) => img.getAttribute("src"))).toEqual(QUERIES);
    expect(displayElement.querySelectorAll("img")).toHaveLength(2);
    expect(displayElement.querySelectorAll("button.pl-btn")).toHaveLength(6);
  });

  test("with exemplars it shows both labelled grids beside the queries", async () => {
    const { displayElement } = await startTimeline([
      trial({ references_left: LEFT, references_right: RIGHT }),
    ]);

    const left = displayElement.querySelector(".pl-refs-left")!;
    const right = displayElement.querySelector(".pl-refs-right")!;
    expect(left.querySelector("h2")!.textContent).toBe("Minimally activating");
    expect(right.querySelectorAll("img")).toHaveLength(3);
    expect(displayElement.querySelector(".pl-description-text")!.textContent).toBe("goldfish");
  });

  test("the description is text, never markup", async () => {
    const { displayElement } = await startTimeline([
      trial({ description: '<img src="x" onerror="alert(1)"> tabby cat' }),
    ]);

    const words = displayElement.querySelector(".pl-description-text")!;
    expect(words.textContent).toBe('<img src="x" onerror="alert(1)"> tabby cat');
    expect(words.querySelector("img")).toBeNull();
  });

  test("it locks the buttons for lockout_ms", async () => {
    const { displayElement } = await startTimeline([trial()]);

    await vi.advanceTimersByTimeAsync(999);
    expect(button(displayElement, 0, 3).disabled).toBe(true);
    await vi.advanceTimersByTimeAsync(1);

    expect(button(displayElement, 0, 3).disabled).toBe(false);
  });

  test("a click records the answer, the description and the verdict shown", async () => {
    const onResponse = vi.fn(async () => ({ correct: false }));
    const { displayElement, getData, expectFinished } = await startTimeline([
      trial({ on_response: onResponse, references_right: RIGHT }),
    ]);
    await vi.advanceTimersByTimeAsync(1200);

    await clickTarget(button(displayElement, 1, 2));
    await vi.advanceTimersByTimeAsync(300);
    expect(displayElement.querySelector('.pl-query[data-query="1"]')!.className).toContain(
      "pl-wrong",
    );
    expect(displayElement.querySelector(".pl-feedback")!.textContent).toBe("Wrong.");
    await vi.advanceTimersByTimeAsync(1000);

    await expectFinished();
    expect(onResponse).toHaveBeenCalledTimes(1);
    expect(getData().values()[0]).toMatchObject({
      trial_type: "description-choice",
      choice: 1,
      confidence: 2,
      rt: 1200,
      description: "goldfish",
      n_references_left: 0,
      n_references_right: 3,
      study_trial_index: 4,
      queries: QUERIES,
      images: 5,
      correct: false,
      feedback_shown: true,
    });
  });

  test("a key press answers with the shared mapping", async () => {
    const { getData } = await startTimeline([trial({ show_feedback: false })]);
    await vi.advanceTimersByTimeAsync(1000);

    await pressKey("0");
    await vi.advanceTimersByTimeAsync(300);

    expect(getData().values()[0]).toMatchObject({ choice: 1, confidence: 3, rt: 1000 });
  });

  test("it waits for its images before it can be answered", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const { displayElement } = await startTimeline([trial({ decode_image: () => held })]);

    await vi.advanceTimersByTimeAsync(3000);
    expect(displayElement.querySelector(".pl-trial")!.classList).toContain("pl-loading");
    expect(button(displayElement, 0, 1).disabled).toBe(true);
    release();
    await vi.advanceTimersByTimeAsync(1000);

    expect(displayElement.querySelector(".pl-trial")!.classList).not.toContain("pl-loading");
    expect(button(displayElement, 0, 1).disabled).toBe(false);
  });
});

describe("description-choice simulation", () => {
  test("data-only mode produces the documented data and still calls on_response", async () => {
    const onResponse = vi.fn(async () => ({ correct: true }));
    const { getData, expectFinished } = await simulateTimeline([
      trial({ on_response: onResponse }),
    ]);

    await expectFinished();
    const data = getData().values()[0];
    expect([0, 1]).toContain(data.choice);
    expect([1, 2, 3]).toContain(data.confidence);
    expect(data).toMatchObject({
      trial_type: "description-choice",
      description: "goldfish",
      n_references_left: 0,
      n_references_right: 0,
      study_trial_index: 4,
    });
    expect(onResponse).toHaveBeenCalledTimes(1);
  });

  test("visual mode clicks the simulated button after the lockout", async () => {
    const { getData, expectFinished } = await simulateTimeline(
      [trial({ simulation_options: { data: { choice: 0, confidence: 1, rt: 1500 } } })],
      "visual",
    );
    await vi.advanceTimersByTimeAsync(1500 + 1300);

    await expectFinished();
    expect(getData().values()[0]).toMatchObject({
      choice: 0,
      confidence: 1,
      rt: 1500,
      description: "goldfish",
    });
  });
});
