import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { ChatPanel } from './ChatPanel.js';
import type { ChatPanelProps } from './ChatPanel.js';
import type { ChatLine } from '../client/state.js';
import { WithI18n } from '../test-support/i18n.js';

afterEach(cleanup);

const lines: ChatLine[] = [
  { id: 1, from: 'system', note: { kind: 'matched' } },
  { id: 2, from: 'you', text: 'hello' },
  { id: 3, from: 'stranger', text: 'hi there' },
];

function setup(over: Partial<ChatPanelProps> = {}) {
  const props: ChatPanelProps = {
    lines,
    strangerTyping: false,
    commonInterests: [],
    status: 'Connected',
    canSend: true,
    onSend: vi.fn(() => true),
    onTyping: vi.fn(),
    ...over,
  };
  const view = render(<ChatPanel {...props} />, { wrapper: WithI18n });
  const input = screen.getByLabelText('Message') as HTMLTextAreaElement;
  return { props, view, input };
}

describe('ChatPanel', () => {
  it("shows the stranger's flag and country only when the stranger chose to show it", () => {
    setup({ country: 'FR' });
    expect(screen.getByTestId('peer-country').textContent).toBe('🇫🇷From France');
    cleanup();
    const { view } = setup();
    expect(screen.queryByTestId('peer-country')).toBeNull();
    expect(view.container.textContent).not.toContain('France');
  });

  it("never renders a stranger's link as clickable: no anchor, no markup, the text as written", () => {
    const link = 'see https://spam.example/x?a=1 or <a href="https://spam.example">here</a> [here](javascript:alert(1))';
    const { view } = setup({ lines: [{ id: 9, from: 'stranger', text: link }] });
    const line = screen.getByText(/spam\.example\/x/).closest('li')!;
    expect(line.textContent).toBe(`Stranger: ${link}`);
    expect(view.container.querySelector('a')).toBeNull();
    expect(view.container.querySelector('[href]')).toBeNull();
  });

  it("shows a stranger's text without bidi overrides or a stack of combining marks, each line isolated (bdi)", () => {
    const disguised = 'abc\u202Efdp.cod.exe';
    const zalgo = `Z${'\u0301'.repeat(1_500)}`;
    const { view } = setup({ lines: [{ id: 1, from: 'stranger', text: disguised }, { id: 2, from: 'stranger', text: zalgo }] });
    const shown = [...view.container.querySelectorAll('li[data-from="stranger"] bdi')].map((b) => b.textContent);
    expect(shown).toEqual(['abcfdp.cod.exe', `Z${'\u0301'.repeat(8)}`]);
  });

  it('labels lines with You and Stranger', () => {
    setup();
    const you = screen.getByText('hello').closest('li')!;
    const stranger = screen.getByText('hi there').closest('li')!;
    expect(you.textContent).toBe('You: hello');
    expect(stranger.textContent).toBe('Stranger: hi there');
    // System lines carry no speaker.
    expect(screen.getByText(/random stranger/).closest('li')!.textContent).not.toMatch(/^(You|Stranger):/);
  });

  it('shows "Stranger is typing…" only while the stranger types', () => {
    const { view, props } = setup();
    expect(screen.queryByText('Stranger is typing…')).toBeNull();
    view.rerender(<ChatPanel {...props} strangerTyping />);
    expect(screen.getByText('Stranger is typing…')).toBeTruthy();
    view.rerender(<ChatPanel {...props} strangerTyping={false} />);
    expect(screen.queryByText('Stranger is typing…')).toBeNull();
  });

  it('Enter sends the draft and clears the box', () => {
    const { input, props } = setup();
    fireEvent.change(input, { target: { value: 'how are you?' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    expect(props.onSend).toHaveBeenCalledWith('how are you?');
    expect(input.value).toBe('');
  });

  it('Shift+Enter does not send', () => {
    const { input, props } = setup();
    fireEvent.change(input, { target: { value: 'line one' } });
    fireEvent.keyDown(input, { key: 'Enter', shiftKey: true });
    expect(props.onSend).not.toHaveBeenCalled();
  });

  it('does not send blank messages or while nobody is there', () => {
    const { input, props, view } = setup();
    fireEvent.change(input, { target: { value: '   ' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    expect(props.onSend).not.toHaveBeenCalled();
    view.rerender(<ChatPanel {...props} canSend={false} />);
    fireEvent.change(input, { target: { value: 'hello?' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    expect(props.onSend).not.toHaveBeenCalled();
    // The draft survives until it can be sent.
    expect(input.value).toBe('hello?');
  });

  it('keeps the draft when sending failed', () => {
    const { input } = setup({ onSend: vi.fn(() => false) });
    fireEvent.change(input, { target: { value: 'retry me' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    expect(input.value).toBe('retry me');
  });

  it('reports typing as the draft fills and empties', () => {
    const { input, props } = setup();
    fireEvent.change(input, { target: { value: 'h' } });
    fireEvent.change(input, { target: { value: '' } });
    expect(props.onTyping).toHaveBeenNthCalledWith(1, true);
    expect(props.onTyping).toHaveBeenNthCalledWith(2, false);
  });

  it('the send button sends too', () => {
    const { input, props } = setup();
    fireEvent.change(input, { target: { value: 'tap' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    expect(props.onSend).toHaveBeenCalledWith('tap');
  });

  it('shows the status and the interests in common', () => {
    setup({ status: 'Connected', commonInterests: ['music', 'chess'] });
    expect(screen.getByTestId('status').textContent).toBe('Connected');
    const shared = screen.getByRole('list', { name: 'Interests you share' });
    expect(shared.textContent).toContain('music');
    expect(shared.textContent).toContain('chess');
  });
});
