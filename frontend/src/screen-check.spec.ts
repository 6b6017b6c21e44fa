import type { Requirements } from "./api";
import { adviceFor, checkWindow, tooSmallMessage, windowVerdict } from "./screen-check";

const MIN = { width: 800, height: 600 };
const REQUIREMENTS: Requirements = {
  slug: "s",
  title: "A study",
  platform: "prolific",
  min_window: MIN,
  fullscreen: true,
};

/** A window whose size and touch points the test sets, with real resize events. */
function fakeWindow(width: number, height: number, touchPoints = 0) {
  const target = new EventTarget() as EventTarget & Record<string, unknown>;
  Object.assign(target, {
    innerWidth: width,
    innerHeight: height,
    navigator: { maxTouchPoints: touchPoints },
  });
  const resize = (w: number, h: number) => {
    Object.assign(target, { innerWidth: w, innerHeight: h });
    target.dispatchEvent(new Event("resize"));
  };
  return { win: target as unknown as Window, resize };
}

describe("windowVerdict", () => {
  test.each([
    [{ width: 1280, height: 720 }, true, "fits"],
    [{ width: 800, height: 600 }, false, "fits"],
    [{ width: 390, height: 844 }, true, "enlarge"], // a phone: 844 × 390 would not fit either
    [{ width: 700, height: 900 }, true, "rotate"], // a tablet upright: 900 × 700 fits
    [{ width: 700, height: 900 }, false, "enlarge"], // a desktop window cannot be turned
  ] as const)("%j (can rotate: %s) → %s", (size, rotates, verdict) => {
    expect(windowVerdict(size, MIN, rotates)).toBe(verdict);
  });
});

describe("adviceFor", () => {
  test("it says to turn the device only where the other orientation fits", () => {
    const phone = adviceFor({ width: 390, height: 844 }, MIN, "enlarge").join(" ");
    const tablet = adviceFor({ width: 700, height: 900 }, MIN, "rotate").join(" ");

    expect(phone).toContain("at least 800 × 600 pixels. Yours is now 390 × 844.");
    expect(phone).not.toMatch(/sideways|landscape/);
    expect(tablet).toContain("Turn your device sideways");
  });
});

describe("tooSmallMessage", () => {
  test("it tells the participant to return the study on their platform", () => {
    expect(tooSmallMessage(REQUIREMENTS)).toContain("return the study on Prolific");
    expect(tooSmallMessage({ ...REQUIREMENTS, platform: "mturk" })).toContain(
      "return the HIT on MTurk",
    );
    expect(tooSmallMessage({ ...REQUIREMENTS, platform: "link" })).not.toContain("return");
  });
});

describe("checkWindow", () => {
  test("a window that fits passes at once, showing nothing", async () => {
    const root = document.createElement("div");
    const { win } = fakeWindow(1024, 768);

    await expect(checkWindow(root, REQUIREMENTS, win)).resolves.toBe("fits");
    expect(root.childElementCount).toBe(0);
  });

  test("a small window waits until it is made large enough", async () => {
    const root = document.createElement("div");
    const { win, resize } = fakeWindow(640, 480);
    const outcome = checkWindow(root, REQUIREMENTS, win);
    expect(root.textContent).toContain("Yours is now 640 × 480");

    resize(700, 500);
    expect(root.textContent).toContain("Yours is now 700 × 500");
    resize(1000, 700);

    await expect(outcome).resolves.toBe("fits");
  });

  test("the participant can say the window cannot be made larger", async () => {
    const root = document.createElement("div");
    const { win } = fakeWindow(390, 844, 5);
    const outcome = checkWindow(root, REQUIREMENTS, win);
    expect(root.textContent).not.toContain("sideways");

    root.querySelector("button")!.click();

    await expect(outcome).resolves.toBe("gave_up");
  });
});
