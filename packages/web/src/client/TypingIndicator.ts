// Our side of "Stranger is typing…": sends `typing` only when it changes, and
// `typing: false` by itself after a pause in the keystrokes.

/** No keystroke for this long means the stranger should stop seeing "typing…". */
export const TYPING_IDLE_MS = 4_000;

export class TypingIndicator {
  private typing = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly send: (typing: boolean) => void,
    private readonly idleMs = TYPING_IDLE_MS,
  ) {}

  /** Called on every keystroke (true) and when the input is emptied (false). */
  set(active: boolean): void {
    this.clearTimer();
    if (active) {
      this.timer = setTimeout(() => this.set(false), this.idleMs);
      if (!this.typing) {
        this.typing = true;
        this.send(true);
      }
    } else if (this.typing) {
      this.typing = false;
      this.send(false);
    }
  }

  /**
   * Forget it without telling: after a message went out (the stranger's
   * client clears "typing…" when it lands) or when the conversation is over.
   */
  reset(): void {
    this.typing = false;
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
