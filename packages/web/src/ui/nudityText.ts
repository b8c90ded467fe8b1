// Every word the nudity protection shows, in one place (to move into the
// translations with the rest).

export const NUDITY_TEXT = {
  checking: 'Checking the video…',
  checkingHint: 'The video shows once it has been checked on this device.',
  flagged: 'This video may show nudity',
  flaggedHint: 'It was blurred on this device. Nothing was sent anywhere.',
  failed: 'The video could not be checked on this device',
  blurredByYou: 'You blurred this video',
  show: 'Show video',
  blur: 'Blur video',
  report: 'Report',
  flaggedBadge: 'May show nudity',
  slow: (everyMs: number): string =>
    `This device is slow: checking one frame every ${(everyMs / 1000).toFixed(1)} s for nudity`,
} as const;
