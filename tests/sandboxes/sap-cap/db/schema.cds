namespace gluefleet.sales;

using { managed } from '@sap/cds/common';

// `managed` adds createdAt/createdBy/modifiedAt/modifiedBy; CAP sets
// modifiedAt on every write, which makes it a usable ETag.
entity BusinessPartners : managed {
  key ID   : String(10);
      name : String(80);
      city : String(40);
}

entity SalesOrders : managed {
  key ID       : String(10);
      partner  : Association to BusinessPartners; // foreign key column partner_ID
      amount   : Decimal(15, 2);
      currency : String(3);
      status   : String(20) default 'NEW';
}
