// A console view that builds itself on first show, polls while shown, and rebuilds in the new language.

import { onLangChange } from "./i18n.js";

export class PolledView {
  /** ``everyMs``: how often refresh() runs while the view is shown. */
  constructor(ctx, root, everyMs) {
    this.ctx = ctx;
    this.root = root;
    this.everyMs = everyMs;
    this.built = false;
    onLangChange(() => {
      if (!this.built) return;
      this.root.replaceChildren();
      this.built = false;
      this.build();
      this.redraw();
    });
  }

  activate() {
    if (!this.built) this.build();
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => !this.root.hidden && this.refresh(), this.everyMs);
  }

  /** Fill the view again after a language change (default: fetch and draw). */
  redraw() {
    this.refresh();
  }
}
