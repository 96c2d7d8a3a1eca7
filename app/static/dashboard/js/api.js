// GraphQL over HTTP, and what this server's schema offers (so newer fields are used once they exist).

import { ROOT, getToken, signOut } from "./session.js";

export const GRAPHQL_PATH = `${ROOT}/graphql`;

export class ApiError extends Error {
  constructor(message, { errors = [], unauthenticated = false, network = false } = {}) {
    super(message);
    this.errors = errors;
    this.unauthenticated = unauthenticated;
    this.network = network;
  }
}

export const EXPIRED = "Your sign-in is no longer valid (the token expired or was replaced). Sign in with a new token.";

/** POST a GraphQL operation with the signed-in token; returns `data` or throws ApiError. */
export async function gql(query, variables = {}, { token = getToken(), signal } = {}) {
  let response;
  try {
    response = await fetch(GRAPHQL_PATH, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
      signal,
    });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError("The server could not be reached. Check the connection and try again.", { network: true });
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status} without a GraphQL result. Try again.`, {
      network: response.status >= 500,
    });
  }
  if (body.errors && body.errors.length) {
    const unauthenticated = body.errors.some((e) => e.extensions && e.extensions.code === "UNAUTHENTICATED");
    if (unauthenticated && token === getToken()) signOut(EXPIRED);
    throw new ApiError(body.errors.map((e) => e.message).join("; "), { errors: body.errors, unauthenticated });
  }
  return body.data;
}

const CAPABILITIES = `query DashboardCapabilities {
  erpRequest: __type(name: "ErpRequest") { fields { name } }
  budget: __type(name: "Budget") { fields { name } }
  blocker: __type(name: "Blocker") { fields { name } }
  budgetActions: __type(name: "BudgetActions") { fields { name } }
  requestActions: __type(name: "ErpRequestActions") { fields { name } }
  query: __type(name: "Query") { fields { name args { name } } }
  decideInput: __type(name: "DecideExportInput") { inputFields { name } }
  requestActionInput: __type(name: "ErpRequestActionInput") { inputFields { name } }
}`;

/** What today's schema has, from introspection. Without introspection: the baseline contract only. */
export async function detectCapabilities() {
  let data = {};
  try {
    data = await gql(CAPABILITIES);
  } catch (error) {
    if (error.unauthenticated || error.network) throw error;
  }
  const names = (type, key = "fields") => new Set(((data[type] || {})[key] || []).map((f) => f.name));
  const queueArgs = new Set(
    (((data.query || {}).fields || []).find((f) => f.name === "erpRequests") || { args: [] }).args.map((a) => a.name),
  );
  const requestFields = names("erpRequest");
  const budgetFields = names("budget");
  const blockerFields = names("blocker");
  const actionInput = names("requestActionInput", "inputFields");
  const pick = (wanted, available) => wanted.filter((name) => available.has(name));
  return {
    // Budget.viewerCan / ErpRequest.viewerCan: only the action flags the server actually has.
    budgetViewerCan: budgetFields.has("viewerCan")
      ? pick(["lock", "unlock", "send", "retrieve"], names("budgetActions"))
      : [],
    requestViewerCan: requestFields.has("viewerCan")
      ? pick(["accept", "reject", "retrieve", "retryExport", "confirmPosting"], names("requestActions"))
      : [],
    blockerLineItem: blockerFields.has("lineItem"),
    blockerField: blockerFields.has("field"),
    queueFilter: queueArgs.has("filter"),
    queueOrder: queueArgs.has("orderBy"),
    requestEntries: requestFields.has("entryCount") && requestFields.has("entriesTotal"),
    decideExpectedVersion: names("decideInput", "inputFields").has("expectedVersion"),
    requestActionExpectedVersion: actionInput.has("expectedVersion"),
    postingTotals: actionInput.has("entryCount") && actionInput.has("totalAmount"),
  };
}
