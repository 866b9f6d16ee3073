// Evaluates flags through published, unmodified OpenFeature OFREP providers against an
// edgeflags edge (argv[2] = base URL, argv[3] = the ofrep_token) and prints the results
// as one JSON object for tests/e2e/ofrep.rs to check.
import { OpenFeature as Server } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OpenFeature as Web } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const [baseUrl, token] = process.argv.slice(2);
const out = {};
const details = (d) => ({ value: d.value, variant: d.variant, reason: d.reason, errorCode: d.errorCode ?? null });

// Server side: the dynamic-context provider, one POST per evaluation, authenticated, so
// the context it sends speaks for its end user (a Japanese user on a phone).
await Server.setProviderAndWait(new OFREPProvider({ baseUrl, headers: [['Authorization', `Bearer ${token}`]] }));
const server = Server.getClient();
const jp = { targetingKey: 'user-42', country: 'JP', device: 'mobile' };
out.serverLocale = details(await server.getStringDetails('locale', 'xx', jp));
out.serverSearch = details(await server.getBooleanDetails('new-search', false, jp));
out.serverCheckout = details(await server.getStringDetails('checkout', 'xx', { targetingKey: 'u-beta-1' }));
out.serverMissing = details(await server.getStringDetails('no-such-flag', 'fallback', jp));
out.serverWrongType = details(await server.getNumberDetails('locale', 7, jp));

// Browser side: the static-context provider, one bulk POST, cached by ETag; it is not
// authenticated, so the edge's own geo (127.0.0.1 is New York) beats the context's.
Web.setContext({ targetingKey: 'user-42', country: 'JP' });
await Web.setProviderAndWait(new OFREPWebProvider({ baseUrl, pollInterval: 0, cacheMode: 'disabled', changeDetection: 'none' }));
const web = Web.getClient();
out.webLocale = details(web.getStringDetails('locale', 'xx'));
out.webCheckout = details(web.getStringDetails('checkout', 'xx'));
out.webMissing = details(web.getStringDetails('no-such-flag', 'fallback'));

console.log(JSON.stringify(out));
await Server.close();
await Web.close();
