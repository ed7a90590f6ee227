// Options every request of a run shares, and the probe that asks the
// collection, once before a run, which methods it allows.
#pragma once

#include <curl/curl.h>

#include <optional>
#include <string>

#include "ferry/error.h"
#include "ferry/run.h"

namespace ferry {

// TLS, protocol, timeouts and redirects: the same for every handle.
void SetConnectionOptions(CURL* easy, const RunOptions& options);

// Certificate checks: `ca_file` adds CA certificates when not empty;
// `insecure` turns verification off.
void SetTlsOptions(CURL* easy, const std::string& ca_file, bool insecure);

// What the collection said to an OPTIONS request on the base URL.
struct Capabilities {
  bool answered = false;  // a 2xx answer came
  // The methods of its Allow (or Access-Control-Allow-Methods) header,
  // upper case, comma separated; nullopt when it sent neither.
  std::optional<std::string> methods;

  // False only when the collection listed its methods without `method`.
  bool Allows(const std::string& method) const;
};

// Sends OPTIONS to the base URL. Transport failures are not errors here:
// the run's own requests meet them and retry; the result then says
// nothing was answered.
Capabilities ProbeCollection(const RunOptions& options, std::string* problem);

}  // namespace ferry
