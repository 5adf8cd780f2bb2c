@req:R2
Feature: Mutual authentication of participants and service (R2)
  TR 33.829 clause 5.1.3: all conference participants shall be securely authenticated;
  participants authenticate the conference service and the service authenticates them
  (observation O7). The service proves itself with a TLS certificate for its domain; participants
  prove themselves with SIP digest (SHA-256, RFC 8760) over that TLS connection and, where the
  service claims mutual TLS, with a client certificate.

  Scenario: The service presents a certificate valid for its domain
    When alice opens a TLS connection to the service
    Then the service certificate validates for the service domain

  Scenario: A participant with valid credentials is admitted
    Given alice has created a secure conference
    When bob joins the conference with a secure offer
    Then bob is admitted with SRTP

  Scenario: A request without credentials is challenged and refused
    Given the control: bob creates a secure conference and is admitted
    When alice creates a conference through the factory URI without credentials
    Then the service challenges with a SHA-256 digest
    And alice is refused with 401

  Scenario: A wrong password is refused
    Given the control: bob creates a secure conference and is admitted
    When alice creates a conference through the factory URI with a wrong password
    Then alice is refused with 401 or 403

  Scenario: A replayed digest nonce is refused
    Given alice has created a secure conference
    When mallory replays alice's authorization in a new INVITE to the factory URI
    Then mallory is refused with 401 or 403

  @pics:mutual_tls
  Scenario: A client without a certificate is refused where mutual TLS is claimed
    Given mallory, presenting a client certificate, is answered over TLS
    When mallory connects to the service without a client certificate
    Then the service refuses the TLS connection

  # RFC 5280 6.1 (trusted issuer, validity period) and 4.2.1.12 (id-kp-clientAuth): each
  # certificate carries bob's identity and one flaw. The suite mints the self-signed and the
  # untrusted-CA ones; the others must come from the target's CA (accounts.bob.flawed_certs).
  @pics:mutual_tls
  Scenario Outline: A client certificate that is <flaw> is refused where mutual TLS is claimed
    Given bob, presenting a client certificate, is answered over TLS
    When bob connects to the service presenting a client certificate that is <flaw>
    Then the service refuses the TLS connection

    Examples:
      | flaw                          |
      | self-signed                   |
      | issued by an untrusted CA     |
      | expired                       |
      | not yet valid                 |
      | not for client authentication |

  # Insecure surface: what an attacker learns without any password (confsec probe does the same).
  Scenario: A wrong password is refused alike for existing and unknown users
    When up to 3 accounts and 2 unknown users each present a wrong password
    Then the refusals do not tell existing users from unknown ones

  @pics:plain_listeners
  Scenario: No plain SIP listener tells which users exist
    When sipvicious probes every plain UDP listener for users
    Then no listener tells existing users from unknown ones

  Scenario: No account's password is in the dictionary
    When up to 3 accounts are tried with every word of the dictionary
    Then no dictionary word gets past authentication
