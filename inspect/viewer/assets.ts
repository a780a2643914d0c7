/**
 * The viewers' stylesheets and browser scripts, as text for inspect/html.ts and
 * inspect/explain-html.ts to inline. They are real files beside this one (page.css, view.css,
 * explain.css, boot.js, view.js, explain.js; the scripts type-checked by ./tsconfig.json). Run
 * from source, this module reads them when loaded; the build (devtools/build.ts) replaces its
 * compiled output with the same exports holding the files' text, so dist/ works without them.
 */
import * as fs from 'fs';
import * as path from 'path';

const read = (file: string): string => fs.readFileSync(path.join(__dirname, file), 'utf8');

/** What both pages share (page.css: palette, type, header links), then each page's own. */
const PAGE_CSS = read('page.css');
export const VIEW_CSS: string = PAGE_CSS + read('view.css');
/** Runs first, before the page's markup: counts uncaught errors for headless tests. */
export const BOOT_JS: string = read('boot.js');
export const VIEW_JS: string = read('view.js');
/** The "why this score" page (inspect/explain-html.ts). */
export const EXPLAIN_CSS: string = PAGE_CSS + read('explain.css');
export const EXPLAIN_JS: string = read('explain.js');
