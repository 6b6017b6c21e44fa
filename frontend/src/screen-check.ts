/**
 * The window check, run before a session starts (so a visit that cannot take part holds no task
 * list): the study's minimum window against the browser's, live as the participant resizes or
 * turns the device. "Turn your device sideways" is said only where the other orientation would
 * fit; a participant who cannot make the window larger gets the study's own message (return it on
 * the platform), never a connection error.
 */
import type { Requirements } from "./api";

export interface WindowSize {
  width: number;
  height: number;
}

/** fits: go on; rotate: the other orientation would fit; enlarge: only a larger window would. */
export type WindowVerdict = "fits" | "rotate" | "enlarge";

/** How the window compares with the minimum; `canRotate` where the device can be turned. */
export function windowVerdict(
  size: WindowSize,
  min: WindowSize,
  canRotate: boolean,
): WindowVerdict {
  if (size.width >= min.width && size.height >= min.height) return "fits";
  const turned = size.height >= min.width && size.width >= min.height;
  return canRotate && turned ? "rotate" : "enlarge";
}

/** Phones and tablets can be turned; a desktop window cannot. */
export function canRotate(win: Window = window): boolean {
  return (win.navigator.maxTouchPoints ?? 0) > 0;
}

export function windowSize(win: Window = window): WindowSize {
  return { width: win.innerWidth, height: win.innerHeight };
}

const RETURN_ADVICE: Record<Requirements["platform"], string> = {
  prolific:
    "Please return the study on Prolific (“Return submission”), so that your place goes to someone else. You can open the link again from a computer with a larger screen.",
  mturk:
    "Please return the HIT on MTurk, so that it goes to someone else. You can accept it again from a computer with a larger screen.",
  link: "You can open the link again from a computer with a larger screen.",
};

/** The study's own message for a participant whose window cannot be made large enough. */
export function tooSmallMessage(requirements: Requirements): string {
  const { width, height } = requirements.min_window;
  return `This study needs a browser window of at least ${width} × ${height} pixels, so it cannot run on this screen. ${RETURN_ADVICE[requirements.platform]}`;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text = "",
  className = "",
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** The check page's text for the current window. */
export function adviceFor(size: WindowSize, min: WindowSize, verdict: WindowVerdict): string[] {
  const lines = [
    `This study needs a browser window of at least ${min.width} × ${min.height} pixels. Yours is now ${size.width} × ${size.height}.`,
  ];
  if (verdict === "rotate") {
    lines.push("Turn your device sideways (landscape): the study fits that way.");
  } else {
    lines.push(
      "Please make the window larger (maximise it, or zoom out with Ctrl and −). The study starts as soon as it fits.",
    );
  }
  return lines;
}

/**
 * Resolves "fits" at once when the window is large enough, else shows the check page and
 * resolves "fits" as soon as it is, or "gave_up" when the participant says it cannot be done
 * (the page then shows `tooSmallMessage`).
 */
export function checkWindow(
  root: HTMLElement,
  requirements: Requirements,
  win: Window = window,
): Promise<"fits" | "gave_up"> {
  const min = requirements.min_window;
  const verdict = () => windowVerdict(windowSize(win), min, canRotate(win));
  if (verdict() === "fits") return Promise.resolve("fits");
  return new Promise((resolve) => {
    const box = element("main", "", "pl-page pl-window-check");
    const text = element("div");
    const giveUp = element("button", "I cannot make the window larger", "jspsych-btn");
    giveUp.type = "button";
    box.append(element("h1", "Your window is too small"), text, giveUp);
    root.replaceChildren(box);
    const update = () => {
      const now = verdict();
      if (now === "fits") return finish("fits");
      text.replaceChildren(
        ...adviceFor(windowSize(win), min, now).map((line) => element("p", line)),
      );
    };
    const finish = (outcome: "fits" | "gave_up") => {
      win.removeEventListener("resize", update);
      win.removeEventListener("orientationchange", update);
      resolve(outcome);
    };
    giveUp.addEventListener("click", () => finish("gave_up"), { once: true });
    win.addEventListener("resize", update);
    win.addEventListener("orientationchange", update);
    update();
  });
}
