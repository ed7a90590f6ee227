// One blocking HTTPS request to a Globus API (Auth or Transfer), with the
// same TLS rules as the collection's: verified unless told otherwise,
// redirects never followed, only HTTPS.
#pragma once

#include <string>
#include <vector>

#include "ferry/error.h"
#include "ferry/globus.h"

namespace ferry {

struct ApiRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // sent when not empty
  // HTTP Basic credentials, when `user` is not empty.
  std::string user;
  std::string password;
  // X-Requested-With, which a collection answers with 401 instead of a
  // login redirect.
  bool xhr = false;
};

struct ApiResponse {
  long status = 0;
  std::string content_type;
  std::string location;  // of a redirect
  std::string body;      // at most 1 MiB
};

// Sends `request` and fills `response` with whatever status came back; an
// error only when no answer came (connection, TLS, timeout).
Status SendApiRequest(const GlobusServices& services, const ApiRequest& request,
                      ApiResponse* response);

// A short description of an error answer for people: the JSON "message",
// "error_description" or "error" where there is one, else the status.
// Never the body itself, which might echo what was sent.
std::string DescribeApiError(const ApiResponse& response);

}  // namespace ferry
