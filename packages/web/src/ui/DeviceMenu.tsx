import { useEffect, useRef } from 'react';
import type { ReactElement } from 'react';
import type { LocalMediaState } from '../client/LocalMedia.js';
import { focusableIn, useEscapeToClose } from './hooks.js';

export interface DeviceMenuProps {
  readonly media: LocalMediaState;
  onCamera(id: string): void;
  onMicrophone(id: string): void;
  onClose(): void;
}

export function DeviceMenu({ media, onCamera, onMicrophone, onClose }: DeviceMenuProps): ReactElement {
  const root = useRef<HTMLDivElement>(null);
  // Esc closes the menu and never reaches the chat screen's skip.
  useEscapeToClose(onClose);
  useEffect(() => focusableIn(root.current!)[0]?.focus(), []);
  return (
    <div className="card popover" role="dialog" aria-label="Camera and microphone" ref={root}>
      <div className="field">
        <label htmlFor="camera-select">Camera</label>
        <select
          id="camera-select"
          value={media.cameraId ?? ''}
          onChange={(e) => onCamera(e.target.value)}
          disabled={media.cameras.length === 0}
        >
          {media.cameras.length === 0 && <option value="">No camera</option>}
          {media.cameras.map((d) => (
            <option key={d.id} value={d.id}>
              {d.label}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="mic-select">Microphone</label>
        <select
          id="mic-select"
          value={media.microphoneId ?? ''}
          onChange={(e) => onMicrophone(e.target.value)}
          disabled={media.microphones.length === 0}
        >
          {media.microphones.length === 0 && <option value="">No microphone</option>}
          {media.microphones.map((d) => (
            <option key={d.id} value={d.id}>
              {d.label}
            </option>
          ))}
        </select>
      </div>
      <button type="button" className="btn" onClick={onClose}>
        Done
      </button>
    </div>
  );
}
