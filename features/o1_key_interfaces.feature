@req:O1 @req:O6
Feature: Protection of the interfaces that carry media keys inside the service (O1, O6)
  TR 33.829 clause 5.1.2: key management naturally sits in the AS, so media keys travel from the
  AS over the MRFC to the mixer (MRFP); IP interfaces carrying them may be protected with NDS/IP,
  i.e. authenticated and encrypted. Where the deployment names such an interface in its
  capability statement, the suite checks that it runs TLS with a certificate for the name
  given, and that it refuses a peer that cannot authenticate itself as the AS: one without a
  certificate, and a participant with its valid one. Where it names none, the interface is not
  testable and the scenarios are not applicable (O6).

  @pics:internal_interfaces
  Scenario: Every interface that carries media keys is protected by TLS
    When the suite connects to every internal key interface with TLS
    Then every internal key interface presents a certificate valid for its name

  @pics:internal_interfaces
  Scenario: An internal key interface refuses an unauthenticated peer
    When the suite connects to every internal key interface with TLS and no client certificate
    Then every internal key interface presents a certificate valid for its name
    And every internal key interface refuses the connection

  @pics:internal_interfaces
  Scenario: An internal key interface refuses a participant's certificate
    When the suite connects to every internal key interface with a participant's certificate
    Then every internal key interface presents a certificate valid for its name
    And every internal key interface refuses the participant's certificate
