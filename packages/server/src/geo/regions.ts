// Country -> region, for the region filter (issue 17): a small static table,
// so that no look-up leaves the process. Source: the continent of each
// ISO 3166-1 alpha-2 code in the `countries-list` package 3.4.1 (Annexare
// Studio, MIT), with Russia under Europe, where most of its people live.
// Antarctica and the uninhabited southern islands have no region.
import { REGIONS, type AreaRegion, type Region } from '@dyad/protocol';

const TABLE: Readonly<Record<AreaRegion, readonly string[]>> = {
  africa: [
    'AC AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH',
    'GM GN GQ GW KE KM LR LS LY MA MG ML MR MU MW MZ NA NE NG RE',
    'RW SC SD SH SL SN SO SS ST SZ TA TD TG TN TZ UG YT ZA ZM ZW',
  ],
  asia: [
    'AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO',
    'JP KG KH KP KR KW KZ LA LB LK MM MN MO MV MY NP OM PH PK PS',
    'QA SA SG SY TH TJ TM TR TW UZ VN YE',
  ],
  europe: [
    'AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG',
    'GI GR HR HU IE IM IS IT JE LI LT LU LV MC MD ME MK MT NL NO',
    'PL PT RO RS RU SE SI SJ SK SM UA VA XK',
  ],
  'north-america': [
    'AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN',
    'HT JM KN KY LC MF MQ MS MX NI PA PM PR SV SX TC TT US VC VG',
    'VI',
  ],
  'south-america': [
    'AR BO BR CL CO EC FK GF GY PE PY SR UY VE',
  ],
  oceania: [
    'AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK',
    'TL TO TV UM VU WF WS',
  ],
};

const BY_COUNTRY: ReadonlyMap<string, AreaRegion> = new Map(
  REGIONS.flatMap((r) => TABLE[r].flatMap((line) => line.split(' ')).map((cc) => [cc, r] as const)),
);

/** The region a country lies in; undefined for a code the table does not place. */
export const regionOf = (country: string): AreaRegion | undefined => BY_COUNTRY.get(country);

/** Where a client is, as far as the region filter is told: only the country code and its region. */
export interface Place {
  country: string;
  area: AreaRegion | undefined;
}

/**
 * The place a session prefers, from its `region` choice and its own place:
 * `near` is its own country (nothing when that is unknown: anywhere),
 * a region is itself, `anywhere` nothing.
 */
export function wantedPlace(choice: Region | undefined, own: Place | undefined): string | undefined {
  if (choice === undefined || choice === 'anywhere') return undefined;
  if (choice === 'near') return own?.country;
  return choice;
}
