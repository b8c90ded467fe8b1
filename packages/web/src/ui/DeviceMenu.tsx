import { useEffect, useRef } from 'react';
import type { ReactElement } from 'react';
import { useTranslation } from 'react-i18next';
import type { LocalMediaState } from '../client/LocalMedia.js';
import { focusableIn, useEscapeToClose } from './hooks.js';

export interface DeviceMenuProps {
  readonly media: LocalMediaState;
  onCamera(id: string): void;
  onMicrophone(id: string): void;
  onClose(): void;
}

export function DeviceMenu({ media, onCamera, onMicrophone, onClose }: DeviceMenuProps): ReactElement {
  const { t } = useTranslation();
  const root = useRef<HTMLDivElement>(null);
  // Esc closes the menu and never reaches the chat screen's skip.
  useEscapeToClose(onClose);
  useEffect(() => focusableIn(root.current!)[0]?.focus(), []);
  return (
    <div className="card popover" role="dialog" aria-label={t('devices.title')} ref={root}>
      <div className="field">
        <label htmlFor="camera-select">{t('devices.camera')}</label>
        <select
          id="camera-select"
          value={media.cameraId ?? ''}
          onChange={(e) => onCamera(e.target.value)}
          disabled={media.cameras.length === 0}
        >
          {media.cameras.length === 0 && <option value="">{t('devices.noCamera')}</option>}
          {media.cameras.map((d, i) => (
            <option key={d.id} value={d.id}>
              {d.label || t('devices.cameraN', { n: i + 1 })}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="mic-select">{t('devices.microphone')}</label>
        <select
          id="mic-select"
          value={media.microphoneId ?? ''}
          onChange={(e) => onMicrophone(e.target.value)}
          disabled={media.microphones.length === 0}
        >
          {media.microphones.length === 0 && <option value="">{t('devices.noMicrophone')}</option>}
          {media.microphones.map((d, i) => (
            <option key={d.id} value={d.id}>
              {d.label || t('devices.microphoneN', { n: i + 1 })}
            </option>
          ))}
        </select>
      </div>
      <button type="button" className="btn" onClick={onClose}>
        {t('devices.done')}
      </button>
    </div>
  );
}
