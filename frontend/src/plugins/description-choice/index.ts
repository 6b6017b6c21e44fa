/**
 * description-choice: the 2AFC trial with words (docs/descriptions.md).
 *
 * The unit's description (its best concept by soft-WPMI, CLIP-Dissect / DISCOVER) in a panel
 * above the stage, and optionally the reference grids of reference-choice beside the two
 * queries (left = minimally, right = maximally activating; the "description + natural
 * exemplars" condition). The participant picks the query that fits the description (2 × 3
 * confidence buttons, keys 1 2 3 for the top query and 8 9 0 for the bottom one; see
 * ../choice-trial.ts). The description is the same whichever query is right: it says nothing
 * about the answer, and it is set as text, never as HTML.
 */
import { type JsPsych, type JsPsychPlugin, ParameterType, type TrialType } from "jspsych";

import {
  choiceData,
  choiceParameters,
  type Resolved,
  queryColumn,
  referenceGrid,
  runChoiceTrial,
  simulateChoiceTrial,
} from "../choice-trial";

const info = <const>{
  name: "description-choice",
  version: "1.0.0",
  parameters: {
    ...choiceParameters,
    /** The unit's description, shown as plain text. */
    description: { type: ParameterType.STRING, default: undefined },
    /** Heading of the description panel. */
    description_label: { type: ParameterType.STRING, default: "The unit responds strongly to" },
    /** Images of the left grid (minimally activating); [] hides the grid. */
    references_left: { type: ParameterType.IMAGE, array: true, default: [] },
    /** Images of the right grid (maximally activating); [] hides the grid. */
    references_right: { type: ParameterType.IMAGE, array: true, default: [] },
    /** Heading of the left grid. */
    left_label: { type: ParameterType.STRING, default: "Minimally activating" },
    /** Heading of the right grid. */
    right_label: { type: ParameterType.STRING, default: "Maximally activating" },
  },
  data: {
    ...choiceData,
    /** The description shown. */
    description: { type: ParameterType.STRING },
    /** Number of images in the left grid. */
    n_references_left: { type: ParameterType.INT },
    /** Number of images in the right grid. */
    n_references_right: { type: ParameterType.INT },
  },
};

type Info = typeof info;
type Params = Resolved<Info>;

class DescriptionChoicePlugin implements JsPsychPlugin<Info> {
  static info = info;

  constructor(private readonly jsPsych: JsPsych) {}

  trial(display_element: HTMLElement, trial: TrialType<Info>): void {
    this.run(display_element, trial as Params);
  }

  simulate(
    trial: TrialType<Info>,
    simulation_mode: "data-only" | "visual",
    simulation_options: Record<string, unknown>,
    load_callback: () => void,
  ): void {
    const given = (simulation_options.data as Record<string, unknown> | undefined) ?? {};
    const options = {
      ...simulation_options,
      data: { ...this.extraData(trial as Params), ...given },
    };
    const params = trial as Params;
    simulateChoiceTrial(this.jsPsych, params, simulation_mode, options, load_callback, () =>
      this.run(this.jsPsych.getDisplayElement(), params),
    );
  }

  private run(display_element: HTMLElement, trial: Params) {
    const stage = document.createElement("div");
    stage.classList.add("pl-stage-description");
    const left = referenceGrid(trial.references_left, trial.left_label, "left");
    const right = referenceGrid(trial.references_right, trial.right_label, "right");
    stage.append(
      descriptionPanel(trial.description, trial.description_label),
      ...[left, queryColumn(trial.queries), right].filter((el) => el !== null),
    );
    return runChoiceTrial(this.jsPsych, display_element, trial, stage, this.extraData(trial));
  }

  private extraData(trial: Params) {
    return {
      description: trial.description,
      n_references_left: trial.references_left.length,
      n_references_right: trial.references_right.length,
    };
  }
}

/** The labelled description, a full row of the stage above the images. */
function descriptionPanel(text: string, label: string): HTMLElement {
  const section = document.createElement("section");
  section.className = "pl-description";
  const heading = document.createElement("h2");
  heading.className = "pl-refs-label";
  heading.textContent = label;
  const words = document.createElement("p");
  words.className = "pl-description-text";
  words.textContent = text;
  section.append(heading, words);
  return section;
}

export default DescriptionChoicePlugin;
