// The renewing token source of an application identity.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "ferry/globus.h"

namespace ferry {
namespace {

using SystemClock = std::chrono::system_clock;

// How long before its expiry a token is renewed: a quarter of its
// lifetime, at least a second and at most five minutes, so that a token
// of two days is renewed five minutes early and one of four seconds
// after three.
std::chrono::seconds RenewMargin(std::chrono::seconds lifetime) {
  return std::clamp(lifetime / 4, std::chrono::seconds(1),
                    std::chrono::seconds(300));
}

// Tokens are renewed at most this often, whatever they say of their
// lifetime: one that lasts a second (or none) must not have Globus Auth
// asked in a tight loop. A token that expires sooner is renewed on demand
// when the collection refuses it.
constexpr std::chrono::seconds kMinRenewInterval(2);

// A cached token is used only when it has this much left.
constexpr std::chrono::seconds kCacheMargin(60);

}  // namespace

struct ClientTokenSource::State {
  Options options;
  std::string cache_key;
  spdlog::logger* log = nullptr;

  std::mutex mutex;
  std::condition_variable wake;
  GrantedToken token;
  SystemClock::time_point obtained;
  uint64_t generation = 0;
  std::atomic<uint64_t> published{0};  // `generation`, readable unlocked
  bool stop = false;
  // Only one grant at a time: the renewal thread and a refusal may both
  // want one.
  std::mutex grant_mutex;
  std::thread renewer;

  // Asks Globus Auth for a token and makes it current.
  Status Grant() {
    std::lock_guard grant_lock(grant_mutex);
    std::vector<GrantedToken> tokens;
    if (Status s = RequestClientTokens(options.services, options.client,
                                       options.scopes, &tokens);
        !s.ok()) {
      return s;
    }
    // The collection's token: the one whose scope holds the first scope
    // asked for (the answer's first token otherwise).
    const GrantedToken* chosen = &tokens.front();
    for (const GrantedToken& t : tokens) {
      if (t.scope.find(options.scopes.front()) != std::string::npos) {
        chosen = &t;
        break;
      }
    }
    {
      std::lock_guard lock(mutex);
      token = *chosen;
      obtained = SystemClock::now();
      published.store(++generation, std::memory_order_release);
    }
    if (!options.cache_path.empty()) {
      Status stored = TokenCache(options.cache_path).Store(cache_key, *chosen);
      if (!stored.ok() && log != nullptr) {
        log->warn("the token is not cached: {}", stored.error().message());
      }
    }
    return {};
  }

  void RenewLoop() {
    std::unique_lock lock(mutex);
    auto retry_at = SystemClock::time_point::min();
    while (!stop) {
      auto lifetime = std::chrono::duration_cast<std::chrono::seconds>(
          token.expires_at - obtained);
      auto due = std::max({token.expires_at - RenewMargin(lifetime), retry_at,
                           obtained + kMinRenewInterval});
      if (wake.wait_until(lock, due, [&] { return stop; })) break;
      if (SystemClock::now() < due) continue;
      uint64_t seen = generation;
      lock.unlock();
      Status s = Grant();
      lock.lock();
      if (s.ok()) {
        retry_at = SystemClock::time_point::min();
        if (log != nullptr && generation != seen) {
          log->info("renewed the collection's token ahead of its expiry");
        }
      } else {
        // Try again soon, but not in a tight loop; the token in use may
        // still be good for a while, and a refusal renews on demand.
        retry_at = SystemClock::now() + std::chrono::seconds(5);
        if (log != nullptr) {
          log->warn("could not renew the collection's token: {}",
                    s.error().message());
        }
      }
    }
  }
};

ClientTokenSource::ClientTokenSource(Options options)
    : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  state_->log = state_->options.services.log;
  state_->cache_key =
      TokenCacheKey(state_->options.client.client_id, state_->options.scopes);
}

ClientTokenSource::~ClientTokenSource() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stop = true;
  }
  state_->wake.notify_all();
  if (state_->renewer.joinable()) state_->renewer.join();
}

Status ClientTokenSource::Start(Options options,
                                std::shared_ptr<ClientTokenSource>* source) {
  std::shared_ptr<ClientTokenSource> made(
      new ClientTokenSource(std::move(options)));
  State& st = *made->state_;
  std::optional<GrantedToken> cached;
  if (!st.options.cache_path.empty()) {
    Status s = TokenCache(st.options.cache_path)
                   .Find(st.cache_key, kCacheMargin, &cached);
    // A cache that others can read is refused, not skipped: the tokens in
    // it may have leaked, and the user should know.
    if (!s.ok() && s.error().code() == ErrorCode::kUsage) return s;
    if (!s.ok() && st.log != nullptr) {
      st.log->warn("token cache not read: {}", s.error().message());
    }
  }
  if (cached) {
    st.token = *cached;
    st.obtained = SystemClock::now();
    st.generation = 1;
    st.published.store(1);
    if (st.log != nullptr) st.log->info("using a cached token");
  } else if (Status s = st.Grant(); !s.ok()) {
    return s;
  }
  st.renewer = std::thread([&st] { st.RenewLoop(); });
  *source = std::move(made);
  return {};
}

std::string ClientTokenSource::Current(uint64_t* generation) {
  std::lock_guard lock(state_->mutex);
  if (generation != nullptr) *generation = state_->generation;
  return state_->token.access_token;
}

uint64_t ClientTokenSource::generation() {
  return state_->published.load(std::memory_order_acquire);
}

std::string ClientTokenSource::Renew(const std::string& refused) {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->token.access_token != refused) {
      return state_->token.access_token;
    }
  }
  if (Status s = state_->Grant(); !s.ok()) {
    if (state_->log != nullptr) {
      state_->log->error("no new token: {}", s.error().message());
    }
    return {};
  }
  std::lock_guard lock(state_->mutex);
  return state_->token.access_token;
}

SystemClock::time_point ClientTokenSource::expires_at() {
  std::lock_guard lock(state_->mutex);
  return state_->token.expires_at;
}

}  // namespace ferry
