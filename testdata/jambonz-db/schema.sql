-- The part of the jambonz MySQL schema this service touches, for tests.
--
-- jambonz owns this schema (its api-server creates and migrates it); the sidecar only reads it,
-- and writes voip_carriers.register_status, voip_carriers.requires_register / is_active,
-- sip_gateways.send_options_ping and the sbc_addresses rows. Only the tables and columns the
-- service's queries and the tests use are declared here; names, types, defaults and keys follow
-- the jambonz schema so that the same queries run unchanged against a real jambonz database.
-- docs/contract.md lists every query and what it relies on.

SET FOREIGN_KEY_CHECKS = 0;

DROP TABLE IF EXISTS account_products, account_subscriptions, products, clients, sip_gateways,
  voip_carriers, sbc_addresses, accounts, service_providers, webhooks, system_information;

-- HTTP callbacks; accounts and service providers point at their registration hook here.
CREATE TABLE webhooks (
  webhook_sid CHAR(36) NOT NULL,
  url VARCHAR(1024) NOT NULL,
  method ENUM('GET', 'POST') NOT NULL DEFAULT 'POST',
  username VARCHAR(255),
  password VARCHAR(255),
  PRIMARY KEY (webhook_sid)
);

CREATE TABLE service_providers (
  service_provider_sid CHAR(36) NOT NULL,
  name VARCHAR(64) NOT NULL,
  description VARCHAR(255),
  root_domain VARCHAR(128),
  registration_hook_sid CHAR(36),
  PRIMARY KEY (service_provider_sid),
  UNIQUE KEY service_providers_name (name),
  UNIQUE KEY service_providers_root_domain (root_domain),
  FOREIGN KEY (registration_hook_sid) REFERENCES webhooks (webhook_sid)
);

-- An account is found by the realm (SIP domain) its devices register to.
CREATE TABLE accounts (
  account_sid CHAR(36) NOT NULL,
  name VARCHAR(64) NOT NULL,
  sip_realm VARCHAR(132),
  service_provider_sid CHAR(36) NOT NULL,
  registration_hook_sid CHAR(36),
  is_active BOOLEAN NOT NULL DEFAULT TRUE,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  webhook_secret VARCHAR(36) NOT NULL,
  device_to_call_ratio INTEGER NOT NULL DEFAULT 5,
  PRIMARY KEY (account_sid),
  UNIQUE KEY accounts_sip_realm (sip_realm),
  KEY accounts_service_provider_sid (service_provider_sid),
  FOREIGN KEY (service_provider_sid) REFERENCES service_providers (service_provider_sid),
  FOREIGN KEY (registration_hook_sid) REFERENCES webhooks (webhook_sid)
);

-- SIP users of an account, used instead of the webhook when the account has no registration
-- hook. password is encrypted by the api-server (see internal/credcrypt).
CREATE TABLE clients (
  client_sid CHAR(36) NOT NULL,
  account_sid CHAR(36) NOT NULL,
  is_active BOOLEAN NOT NULL DEFAULT TRUE,
  username VARCHAR(64),
  password VARCHAR(1024),
  allow_direct_app_calling BOOLEAN NOT NULL DEFAULT TRUE,
  allow_direct_queue_calling BOOLEAN NOT NULL DEFAULT TRUE,
  allow_direct_user_calling BOOLEAN NOT NULL DEFAULT TRUE,
  PRIMARY KEY (client_sid),
  KEY clients_account_sid (account_sid),
  FOREIGN KEY (account_sid) REFERENCES accounts (account_sid)
);

-- Capacities: an account's current subscription lists quantities of products; the category
-- 'device' limits registered devices, 'voice_call_session' calls.
CREATE TABLE products (
  product_sid CHAR(36) NOT NULL,
  name VARCHAR(32) NOT NULL,
  category ENUM('api_rate', 'voice_call_session', 'device') NOT NULL,
  PRIMARY KEY (product_sid)
);

CREATE TABLE account_subscriptions (
  account_subscription_sid CHAR(36) NOT NULL,
  account_sid CHAR(36) NOT NULL,
  pending BOOLEAN NOT NULL DEFAULT FALSE,
  effective_start_date DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  effective_end_date DATETIME,
  PRIMARY KEY (account_subscription_sid),
  KEY account_subscriptions_account_sid (account_sid),
  FOREIGN KEY (account_sid) REFERENCES accounts (account_sid)
);

CREATE TABLE account_products (
  account_product_sid CHAR(36) NOT NULL,
  account_subscription_sid CHAR(36) NOT NULL,
  product_sid CHAR(36) NOT NULL,
  quantity INTEGER NOT NULL,
  PRIMARY KEY (account_product_sid),
  KEY account_products_subscription (account_subscription_sid),
  FOREIGN KEY (account_subscription_sid) REFERENCES account_subscriptions (account_subscription_sid),
  FOREIGN KEY (product_sid) REFERENCES products (product_sid)
);

-- Carriers (SIP trunks). The regbot registers to those with requires_register and reports in
-- register_status (JSON); account_sid NULL means the carrier belongs to the service provider.
CREATE TABLE voip_carriers (
  voip_carrier_sid CHAR(36) NOT NULL,
  name VARCHAR(64) NOT NULL,
  account_sid CHAR(36),
  service_provider_sid CHAR(36),
  e164_leading_plus BOOLEAN NOT NULL DEFAULT FALSE,
  requires_register BOOLEAN NOT NULL DEFAULT FALSE,
  register_username VARCHAR(64),
  register_sip_realm VARCHAR(64),
  register_password VARCHAR(64),
  is_active BOOLEAN NOT NULL DEFAULT TRUE,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  register_from_user VARCHAR(128),
  register_from_domain VARCHAR(255),
  register_public_ip_in_contact BOOLEAN NOT NULL DEFAULT FALSE,
  register_status VARCHAR(4096),
  outbound_sip_proxy VARCHAR(255),
  trunk_type ENUM('static_ip', 'auth', 'reg') NOT NULL DEFAULT 'static_ip',
  PRIMARY KEY (voip_carrier_sid),
  KEY voip_carriers_account_sid (account_sid),
  KEY voip_carriers_service_provider_sid (service_provider_sid),
  FOREIGN KEY (account_sid) REFERENCES accounts (account_sid),
  FOREIGN KEY (service_provider_sid) REFERENCES service_providers (service_provider_sid)
);

-- Gateways of a carrier: the regbot registers to the outbound ones, the pinger sends OPTIONS to
-- those with send_options_ping. ipv4 may hold a DNS name.
CREATE TABLE sip_gateways (
  sip_gateway_sid CHAR(36) NOT NULL,
  ipv4 VARCHAR(128) NOT NULL,
  netmask INTEGER NOT NULL DEFAULT 32,
  port INTEGER,
  inbound BOOLEAN NOT NULL,
  outbound BOOLEAN NOT NULL,
  voip_carrier_sid CHAR(36) NOT NULL,
  is_active BOOLEAN NOT NULL DEFAULT TRUE,
  send_options_ping BOOLEAN NOT NULL DEFAULT FALSE,
  use_sips_scheme BOOLEAN NOT NULL DEFAULT FALSE,
  protocol ENUM('udp', 'tcp', 'tls', 'tls/srtp') DEFAULT 'udp',
  PRIMARY KEY (sip_gateway_sid),
  KEY sip_gateways_host_port (ipv4, port),
  KEY sip_gateways_voip_carrier_sid (voip_carrier_sid),
  FOREIGN KEY (voip_carrier_sid) REFERENCES voip_carriers (voip_carrier_sid)
);

-- Public SIP addresses of the live SBCs, kept fresh by every sidecar (last_updated) and pruned
-- when stale. There is no unique key on (ipv4, port): see internal/sbcaddr for how writers agree.
CREATE TABLE sbc_addresses (
  sbc_address_sid CHAR(36) NOT NULL,
  ipv4 VARCHAR(255) NOT NULL,
  port INTEGER NOT NULL DEFAULT 5060,
  tls_port INTEGER,
  wss_port INTEGER,
  service_provider_sid CHAR(36),
  last_updated DATETIME,
  PRIMARY KEY (sbc_address_sid),
  KEY sbc_addresses_host_port (ipv4, port),
  FOREIGN KEY (service_provider_sid) REFERENCES service_providers (service_provider_sid)
);

-- One row at most; sip_domain_name is the Contact host of outbound registrations to carriers
-- that have no account realm and do not ask for the public IP (internal/regbot).
CREATE TABLE system_information (
  domain_name VARCHAR(255),
  sip_domain_name VARCHAR(255)
);

SET FOREIGN_KEY_CHECKS = 1;
