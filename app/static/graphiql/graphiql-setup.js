/* BudgetBridge's GraphiQL: everything is served by this server (no CDN). Queries and mutations go over
 * HTTP POST with the headers from the Headers pane; subscriptions go over a WebSocket speaking
 * graphql-transport-ws, and GraphiQL's fetcher passes the same headers as the connection_init payload,
 * which is where the server reads `Authorization` from on a WebSocket. */
(function () {
  "use strict";

  var endpoint = document.querySelector('meta[name="budgetbridge-graphql"]').content;
  var url = new URL(endpoint, window.location.href);
  var subscriptionUrl = new URL(url.href);
  subscriptionUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";

  var DEFAULT_QUERY = [
    "# BudgetBridge GraphQL API (GraphiQL served by this server; it works offline).",
    "#",
    "# Authenticate: open the Headers pane below and enter",
    '#   {"Authorization": "Bearer <token>"}',
    "# Get a token with `budgetbridge token --user <USER_ID>`, or copy one that",
    "# `budgetbridge serve --demo` printed. Subscriptions use the same header: GraphiQL",
    "# sends it in the WebSocket's connection_init message.",
    "#",
    "# Run: Ctrl-Enter (or the play button). Complete: Ctrl-Space. Docs: the book icon.",
    "",
    "query Viewer {",
    "  viewer {",
    "    name",
    "    email",
    "    company { name currency }",
    "    isAccountingApprover",
    "    erpIntegrationsPermission",
    "  }",
    "}",
    "",
    "# Live export status changes: select this operation, run it, then send or decide",
    "# a request from the dashboard (/) or another tab.",
    "subscription Live {",
    "  exportStatusChanged {",
    "    sequence type previousStatus status reason",
    "    project { name }",
    "    erpRequest { id sequence status }",
    "    actor { name }",
    "  }",
    "}",
    "",
  ].join("\n");

  // Signed in to the dashboard in this tab? Start with its token in the Headers pane.
  var token = null;
  try {
    token = window.sessionStorage.getItem("budgetbridge.token");
  } catch (e) {
    token = null;
  }
  var defaultHeaders = token
    ? JSON.stringify({ Authorization: "Bearer " + token }, null, 2)
    : '{\n  "Authorization": "Bearer <token>"\n}';

  var fetcher = GraphiQL.createFetcher({
    url: url.href,
    subscriptionUrl: subscriptionUrl.href,
  });

  // A placeholder token must not be sent: GraphiQL's schema introspection would fail with it.
  function withoutPlaceholder(params, options) {
    var headers = (options && options.headers) || {};
    var cleaned = {};
    Object.keys(headers).forEach(function (name) {
      if (!/<token>/.test(String(headers[name]))) cleaned[name] = headers[name];
    });
    return fetcher(params, Object.assign({}, options, { headers: cleaned }));
  }

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: withoutPlaceholder,
      defaultQuery: DEFAULT_QUERY,
      defaultHeaders: defaultHeaders,
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    }),
  );
})();
