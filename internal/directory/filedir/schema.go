package filedir

// The YAML schema mirrors the jambonz tables the service reads: one list per
// table, one mapping per row, keys named after the columns, and the column
// defaults of the jambonz schema (testdata/jambonz-db/schema.sql). Rows refer to each other by their *_sid as in
// MySQL. The one simplification: an account's purchased quantities
// (account_subscriptions x account_products x products) are given directly
// as `capacities` on the account.

type fileDoc struct {
	Webhooks     []webhookRow `yaml:"webhooks"`
	Accounts     []accountRow `yaml:"accounts"`
	Clients      []clientRow  `yaml:"clients"`
	VoipCarriers []carrierRow `yaml:"voip_carriers"`
	SIPGateways  []gatewayRow `yaml:"sip_gateways"`
	// SIPDomainName stands for system_information.sip_domain_name: the
	// Contact host of outbound registrations when nothing else gives one.
	SIPDomainName string `yaml:"sip_domain_name"`
}

type webhookRow struct {
	WebhookSID string `yaml:"webhook_sid"`
	URL        string `yaml:"url"`
	Method     string `yaml:"method"`
	Username   string `yaml:"username"`
	Password   string `yaml:"password"`
}

type accountRow struct {
	AccountSID          string         `yaml:"account_sid"`
	ServiceProviderSID  string         `yaml:"service_provider_sid"`
	Name                string         `yaml:"name"`
	SIPRealm            string         `yaml:"sip_realm"`
	RegistrationHookSID string         `yaml:"registration_hook_sid"`
	WebhookSecret       string         `yaml:"webhook_secret"`
	DeviceToCallRatio   *int           `yaml:"device_to_call_ratio"`
	IsActive            *bool          `yaml:"is_active"`
	Capacities          map[string]int `yaml:"capacities"`
}

type clientRow struct {
	ClientSID               string `yaml:"client_sid"`
	AccountSID              string `yaml:"account_sid"`
	Username                string `yaml:"username"`
	Password                string `yaml:"password"`
	IsActive                *bool  `yaml:"is_active"`
	AllowDirectAppCalling   *bool  `yaml:"allow_direct_app_calling"`
	AllowDirectQueueCalling *bool  `yaml:"allow_direct_queue_calling"`
	AllowDirectUserCalling  *bool  `yaml:"allow_direct_user_calling"`
}

type carrierRow struct {
	VoipCarrierSID            string `yaml:"voip_carrier_sid"`
	Name                      string `yaml:"name"`
	AccountSID                string `yaml:"account_sid"`
	ServiceProviderSID        string `yaml:"service_provider_sid"`
	IsActive                  *bool  `yaml:"is_active"`
	RequiresRegister          bool   `yaml:"requires_register"`
	RegisterUsername          string `yaml:"register_username"`
	RegisterPassword          string `yaml:"register_password"`
	RegisterSIPRealm          string `yaml:"register_sip_realm"`
	RegisterFromUser          string `yaml:"register_from_user"`
	RegisterFromDomain        string `yaml:"register_from_domain"`
	RegisterPublicIPInContact bool   `yaml:"register_public_ip_in_contact"`
	RegisterFromAllSBCs       bool   `yaml:"register_from_all_sbcs"`
	OutboundSIPProxy          string `yaml:"outbound_sip_proxy"`
	TrunkType                 string `yaml:"trunk_type"`
}

type gatewayRow struct {
	SIPGatewaySID   string `yaml:"sip_gateway_sid"`
	VoipCarrierSID  string `yaml:"voip_carrier_sid"`
	IPv4            string `yaml:"ipv4"`
	Port            *int   `yaml:"port"`
	Protocol        string `yaml:"protocol"`
	Inbound         bool   `yaml:"inbound"`
	Outbound        bool   `yaml:"outbound"`
	IsActive        *bool  `yaml:"is_active"`
	SendOptionsPing bool   `yaml:"send_options_ping"`
	UseSipsScheme   bool   `yaml:"use_sips_scheme"`
}

// Carrier is a voip_carriers row with its gateways, for the components that
// register to carriers and ping gateways.
type Carrier struct {
	VoipCarrierSID            string
	Name                      string
	AccountSID                string // "" for service-provider carriers
	ServiceProviderSID        string
	IsActive                  bool
	RequiresRegister          bool
	RegisterUsername          string
	RegisterPassword          string
	RegisterSIPRealm          string
	RegisterFromUser          string
	RegisterFromDomain        string
	RegisterPublicIPInContact bool
	// RegisterFromAllSBCs: every instance registers the carrier with its own
	// Contact (docs/outbound.md#registering-from-every-sbc); file only.
	RegisterFromAllSBCs bool
	OutboundSIPProxy    string
	TrunkType           string // static_ip, auth, reg
	Gateways            []Gateway
}

// Gateway is a sip_gateways row.
type Gateway struct {
	SIPGatewaySID   string
	VoipCarrierSID  string
	IPv4            string // IP address or DNS name
	Port            int    // 0 when not given
	Protocol        string // udp, tcp, tls, tls/srtp
	Inbound         bool
	Outbound        bool
	IsActive        bool
	SendOptionsPing bool
	UseSipsScheme   bool
}
